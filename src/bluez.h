/* SPDX-License-Identifier: MIT */
#pragma once

/* The D-Bus glue to BlueZ: the only code that sees sd-bus messages. It tracks adapters,
 * devices and GATT characteristics from GetManagedObjects and signals, wraps the methods
 * BluPow calls (each async, with an explicit timeout), and maps BlueZ errors to one enum. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

enum bluez_error {
        BLUEZ_OK = 0,
        BLUEZ_ERR_ABORT_BY_LOCAL,  /* Failed: le-connection-abort-by-local / Software caused connection abort
                                    */
        BLUEZ_ERR_CANCELED,        /* Failed: br-connection-canceled */
        BLUEZ_ERR_CONNECTION,      /* Failed: other le-connection-* / br-connection-* reasons */
        BLUEZ_ERR_CONNECT_PENDING, /* Failed: Operation already in progress (a second Connect) */
        BLUEZ_ERR_NOT_CONNECTED,   /* Failed: Not connected, or NotConnected */
        BLUEZ_ERR_IN_PROGRESS,     /* InProgress */
        BLUEZ_ERR_NOT_READY,       /* NotReady: adapter powered off */
        BLUEZ_ERR_NOT_SUPPORTED,
        BLUEZ_ERR_NOT_PERMITTED,
        BLUEZ_ERR_DOES_NOT_EXIST,
        BLUEZ_ERR_INVALID_ARGUMENTS,
        BLUEZ_ERR_UNKNOWN_OBJECT, /* the object vanished (device removed, adapter unplugged) */
        BLUEZ_ERR_NO_OWNER,       /* org.bluez has no owner: bluetoothd not running */
        BLUEZ_ERR_ACCESS_DENIED,  /* AppArmor or the bus policy refused the message */
        BLUEZ_ERR_TIMEOUT,        /* no reply within our timeout */
        BLUEZ_ERR_DISCONNECTED,   /* our own bus connection is gone */
        BLUEZ_ERR_FAILED,         /* anything else */
        _BLUEZ_ERR_MAX,
};

enum bluez_error bluez_error_from_dbus(const char *name, const char *message);
const char *bluez_error_to_string(enum bluez_error e);
/* Worth retrying the same operation after a short wait. */
bool bluez_error_is_transient(enum bluez_error e);

struct bluez_adapter {
        char *path;
        char name[16];
        char address[18];
        bool powered;
        bool discovering;
        /* Our own client's discovery session: started and not yet stopped. */
        bool own_discovery;
        uint64_t own_discovery_stopped_usec;
};

/* Another client (Home Assistant's Bluetooth integration, bluetoothctl) is scanning on the
 * adapter: it reports Discovering while our own session is off. Our Discovering=false signal
 * trails our StopDiscovery, so the first two seconds after a stop do not count. */
bool bluez_adapter_shared(const struct bluez_adapter *a);

/* HCI's "RSSI not available", which BlueZ passes on as a value: an emulated controller reports
 * it with every advertisement, and a real one may. Valid readings are -127..20 dBm. */
#define BLUEZ_RSSI_UNKNOWN 127
static inline bool bluez_rssi_known(int16_t rssi)
{
        return rssi >= -127 && rssi <= 20;
}

struct bluez_device {
        char *path;
        char *adapter_path;
        char address[18];
        char name[64];
        int16_t rssi;
        bool has_rssi;
        bool connected;
        bool services_resolved;
        uint64_t last_seen_usec; /* last advertisement (RSSI/ManufacturerData update), 0 = never */
};

enum {
        BLUEZ_CHAR_READ = 1 << 0,
        BLUEZ_CHAR_WRITE = 1 << 1,
        BLUEZ_CHAR_WRITE_NO_RESPONSE = 1 << 2,
        BLUEZ_CHAR_NOTIFY = 1 << 3,
        BLUEZ_CHAR_INDICATE = 1 << 4,
};

struct bluez_char {
        char *path;
        char *service_path;
        char uuid[40];
        unsigned flags;
};

struct bluez_service {
        char *path;
        char *device_path;
        char uuid[40];
};

enum {
        BLUEZ_DEV_ADDED = 1 << 0,
        BLUEZ_DEV_REMOVED = 1 << 1,
        BLUEZ_DEV_ADVERTISED = 1 << 2,
        BLUEZ_DEV_CONNECTED = 1 << 3,
        BLUEZ_DEV_RESOLVED = 1 << 4,
        BLUEZ_DEV_GATT = 1 << 5, /* a service or characteristic under it came or went */
        BLUEZ_DEV_LOST = 1 << 6, /* RSSI invalidated: no longer being discovered */
};

struct bluez_handlers {
        /* org.bluez gained (true) or lost (false) its owner; objects are rebuilt after. */
        void (*service)(void *userdata, bool up);
        void (*adapter)(void *userdata, const struct bluez_adapter *a, bool removed);
        void (*device)(void *userdata, const struct bluez_device *d, unsigned what);
        void (*notification)(void *userdata, const char *char_path, const uint8_t *data, size_t len);
        /* The initial GetManagedObjects failed or succeeded. */
        void (*synced)(void *userdata, enum bluez_error e, const char *message);
};

struct bluez;
struct bluez_call;

typedef void (*bluez_done_t)(void *userdata, enum bluez_error e, const char *message);
/* AcquireNotify's and AcquireWrite's answer: on success `fd` (owned by the callee from then on)
 * is a SOCK_SEQPACKET socket with one notification or one write per packet, and `mtu` the ATT
 * MTU; on failure fd is -1. */
typedef void (*bluez_fd_done_t)(
        void *userdata, enum bluez_error e, const char *message, int fd, uint16_t mtu);

/* Opens the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured) and starts following org.bluez.
 * Returns -ENOENT when there is no bus socket. */
int bluez_new(struct bluez **ret, sd_event *event, const struct bluez_handlers *h, void *userdata);
struct bluez *bluez_free(struct bluez *b);
bool bluez_service_up(const struct bluez *b);
/* The bus went away under us (daemon restart, socket closed). */
bool bluez_bus_broken(const struct bluez *b);

const struct bluez_adapter *bluez_adapter_find(const struct bluez *b, const char *name);
const struct bluez_adapter *bluez_adapter_first(const struct bluez *b);
size_t bluez_adapters(const struct bluez *b, const struct bluez_adapter *const **ret);
/* The device with this address under the adapter at adapter_path (NULL: under any adapter). */
const struct bluez_device *bluez_device_find(
        const struct bluez *b, const char *adapter_path, const char *address);
size_t bluez_devices(const struct bluez *b, const struct bluez_device *const **ret);
/* Finds a characteristic by service UUID, characteristic UUID and required flags under a
 * device (never by the handles in its path: those change with the firmware). */
const struct bluez_char *bluez_char_find(const struct bluez *b, const char *device_path,
        const char *service_uuid, const char *char_uuid, unsigned flags);

/* Device1 property changes are followed only for watched devices (by adapter and address),
 * and for every device while watch_all is on (a scan). Added and removed devices are always
 * seen. */
int bluez_watch_device(struct bluez *b, const char *adapter, const char *address);
void bluez_unwatch_device(struct bluez *b, const char *adapter, const char *address);
int bluez_watch_all_devices(struct bluez *b, bool on);

/* Async calls. The callback runs exactly once unless the call is cancelled first; the
 * returned handle (may be NULL when not needed) is freed after the callback. With neither a
 * callback nor a handle, BlueZ is asked not to answer at all. */
int bluez_start_discovery(struct bluez *b, const char *adapter_path, bluez_done_t cb, void *userdata);
int bluez_stop_discovery(struct bluez *b, const char *adapter_path, bluez_done_t cb, void *userdata);
int bluez_connect(struct bluez *b, const char *device_path, uint64_t timeout_usec, bluez_done_t cb,
        void *userdata, struct bluez_call **ret);
int bluez_disconnect(
        struct bluez *b, const char *device_path, bluez_done_t cb, void *userdata, struct bluez_call **ret);
int bluez_start_notify(
        struct bluez *b, const char *char_path, bluez_done_t cb, void *userdata, struct bluez_call **ret);
/* Notifications through a socket instead of PropertiesChanged(Value) signals: each arrives as
 * one packet, with no D-Bus message to route and parse. */
int bluez_acquire_notify(
        struct bluez *b, const char *char_path, bluez_fd_done_t cb, void *userdata, struct bluez_call **ret);
/* Writes without response through a socket instead of a WriteValue call and its reply each. */
int bluez_acquire_write(
        struct bluez *b, const char *char_path, bluez_fd_done_t cb, void *userdata, struct bluez_call **ret);
int bluez_write_command(struct bluez *b, const char *char_path, const uint8_t *data, size_t len,
        bluez_done_t cb, void *userdata, struct bluez_call **ret);
int bluez_set_powered(struct bluez *b, const char *adapter_path, bool on, bluez_done_t cb, void *userdata);
void bluez_call_cancel(struct bluez_call *c);

/* Parsers shared with the fuzzer and unit tests: they read D-Bus messages built in memory. */
struct sd_bus_message;
int bluez_parse_device_props(struct sd_bus_message *m, struct bluez_device *d, unsigned *changed);
