/* SPDX-License-Identifier: MIT */
/* libFuzzer: what BlueZ (or anything that claims its name) may send, through blupowd's D-Bus
 * parsing: GetManagedObjects replies, InterfacesAdded/Removed and PropertiesChanged built in
 * memory with sd-bus from the fuzz input. Properties come with the right names and any type,
 * containers nest where they should not, bodies have the wrong signature; a sequence of
 * messages runs against one object table, so later signals meet the objects earlier ones made.
 *
 * bluez.c is compiled into this file to reach its static message handlers: the daemon's code
 * as it is, with no entry point added for tests. */
#include "../../src/bluez.c"

#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* After every message, the tables agree with the list of devices, and the lookups the links
 * use run over whatever the messages left. */
static void check_tables(struct bluez *b)
{
        if (strmap_size(&b->device_by_path) != b->n_devices ||
                strmap_size(&b->chars_by_device) != strmap_size(&b->char_by_path))
                abort();
        for (size_t i = 0; i < b->n_devices; i++) {
                const struct bluez_device *d = b->devices[i];
                if (strmap_get_str(&b->device_by_path, d->path) != d)
                        abort();
                const struct bluez_device *f = bluez_device_find(b, d->adapter_path, d->address);
                if (f && strcasecmp(f->address, d->address) != 0)
                        abort();
                (void)bluez_char_find(b, d->path, "0000fff0-0000-1000-8000-00805f9b34fb",
                        "0000fff1-0000-1000-8000-00805f9b34fb", BLUEZ_CHAR_NOTIFY);
        }
}

struct input {
        const uint8_t *p;
        size_t n;
};

static uint8_t take(struct input *in)
{
        if (!in->n)
                return 0;
        in->n--;
        return *in->p++;
}

static const char *pick(struct input *in, const char *const *list, size_t n)
{
        return list[take(in) % n];
}

#define PICK(in, list) pick(in, list, ELEMENTSOF(list))

static const char *const paths[] = {
        "/org/bluez/hci0",
        "/org/bluez/hci1",
        "/org/bluez/hci0/dev_60_98_66_ED_FC_11",
        "/org/bluez/hci0/dev_60_98_66_ED_FC_11/service000e",
        "/org/bluez/hci0/dev_60_98_66_ED_FC_11/service000e/char000f",
        "/org/bluez/hci0/dev_60_98_66_ED_FC_11/service0012/char0013",
        "/org/bluez/hci0/dev_C4_D3_6A_00_11_22",
        "/org/bluez/hci0/dev_C4_D3_6A_00_11_22/service0010/char0011",
        "/org/bluez",
        "/",
};

static const char *const interfaces[] = {
        "org.bluez.Adapter1",
        "org.bluez.Device1",
        "org.bluez.GattService1",
        "org.bluez.GattCharacteristic1",
        "org.freedesktop.DBus.Properties",
        "org.bluez.LEAdvertisingManager1",
};

static const char *const properties[] = {
        "Address",
        "AddressType",
        "Name",
        "Alias",
        "Adapter",
        "RSSI",
        "ManufacturerData",
        "Connected",
        "ServicesResolved",
        "Powered",
        "Discovering",
        "UUID",
        "UUIDs",
        "Service",
        "Device",
        "Flags",
        "Notifying",
        "Value",
        "TxPower",
};

/* Strings from the input, made valid UTF-8 (sd-bus refuses anything else on append). */
static void take_string(struct input *in, char *buf, size_t size)
{
        size_t n = take(in) % size;
        for (size_t i = 0; i < n; i++)
                buf[i] = (char)(0x20 + take(in) % 0x5F);
        buf[n] = 0;
}

static int append_variant(sd_bus_message *m, struct input *in, unsigned depth)
{
        static const char *const sigs[] = {
                "s", "b", "n", "q", "o", "as", "ay", "a{qv}", "u", "y", "d", "a{sv}", "ao", "x"};
        const char *sig = PICK(in, sigs);
        if (depth > 3)
                sig = "b";
        int r = sd_bus_message_open_container(m, 'v', sig);
        if (r < 0)
                return r;
        char buf[48];
        switch (sig[0] == 'a' ? sig[1] : sig[0]) {
        case 's':
                if (sig[0] == 'a') {
                        if ((r = sd_bus_message_open_container(m, 'a', "s")) < 0)
                                return r;
                        for (unsigned i = take(in) % 5; i > 0 && r >= 0; i--) {
                                take_string(in, buf, sizeof buf);
                                r = sd_bus_message_append(m, "s", buf);
                        }
                        if (r >= 0)
                                r = sd_bus_message_close_container(m);
                } else {
                        take_string(in, buf, sizeof buf);
                        r = sd_bus_message_append(m, "s", buf);
                }
                break;
        case 'b':
                r = sd_bus_message_append(m, "b", take(in) & 1);
                break;
        case 'n':
                r = sd_bus_message_append(m, "n", (int16_t)(take(in) << 8 | take(in)));
                break;
        case 'q':
                r = sd_bus_message_append(m, "q", (uint16_t)(take(in) << 8 | take(in)));
                break;
        case 'o':
                if (sig[0] == 'a')
                        r = sd_bus_message_append(m, "ao", 2, PICK(in, paths), PICK(in, paths));
                else
                        r = sd_bus_message_append(m, "o", PICK(in, paths));
                break;
        case 'y':
                if (sig[0] == 'a') {
                        uint8_t bytes[64];
                        size_t n = take(in) % sizeof bytes;
                        for (size_t i = 0; i < n; i++)
                                bytes[i] = take(in);
                        r = sd_bus_message_append_array(m, 'y', bytes, n);
                } else
                        r = sd_bus_message_append(m, "y", take(in));
                break;
        case '{':
                /* a{qv} (ManufacturerData) or a{sv}: keys, then any value */
                if ((r = sd_bus_message_open_container(m, 'a', sig + 1)) < 0)
                        return r;
                for (unsigned i = take(in) % 3; i > 0 && r >= 0; i--) {
                        char entry[8];
                        snprintf(entry, sizeof entry, "%.*s", (int)strlen(sig + 2) - 1, sig + 2);
                        if ((r = sd_bus_message_open_container(m, 'e', entry)) < 0)
                                break;
                        if (sig[2] == 'q')
                                r = sd_bus_message_append(m, "q", (uint16_t)(take(in) << 8 | take(in)));
                        else
                                r = sd_bus_message_append(m, "s", PICK(in, properties));
                        if (r >= 0)
                                r = append_variant(m, in, depth + 1);
                        if (r >= 0)
                                r = sd_bus_message_close_container(m);
                }
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                break;
        case 'u':
                r = sd_bus_message_append(m, "u", (uint32_t)take(in) << 24 | take(in));
                break;
        case 'd':
                r = sd_bus_message_append(m, "d", (double)(int8_t)take(in) / 3.0);
                break;
        case 'x':
                r = sd_bus_message_append(m, "x", (int64_t)(int8_t)take(in) * ((int64_t)1 << 40));
                break;
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* a{sv}: known property names with values of any type. */
static int append_props(sd_bus_message *m, struct input *in)
{
        int r = sd_bus_message_open_container(m, 'a', "{sv}");
        for (unsigned i = take(in) % 8; i > 0 && r >= 0; i--) {
                if ((r = sd_bus_message_open_container(m, 'e', "sv")) < 0)
                        break;
                r = sd_bus_message_append(m, "s", PICK(in, properties));
                if (r >= 0)
                        r = append_variant(m, in, 0);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        return r < 0 ? r : sd_bus_message_close_container(m);
}

/* a{sa{sv}}: interfaces of one object. */
static int append_interfaces(sd_bus_message *m, struct input *in)
{
        int r = sd_bus_message_open_container(m, 'a', "{sa{sv}}");
        for (unsigned i = take(in) % 3; i > 0 && r >= 0; i--) {
                if ((r = sd_bus_message_open_container(m, 'e', "sa{sv}")) < 0)
                        break;
                r = sd_bus_message_append(m, "s", PICK(in, interfaces));
                if (r >= 0)
                        r = append_props(m, in);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        return r < 0 ? r : sd_bus_message_close_container(m);
}

/* A body of the wrong shape: a few basic values where containers were expected. */
static int append_wrong_body(sd_bus_message *m, struct input *in)
{
        int r = 0;
        for (unsigned i = take(in) % 3; i > 0 && r >= 0; i--)
                switch (take(in) % 4) {
                case 0:
                        r = sd_bus_message_append(m, "s", PICK(in, interfaces));
                        break;
                case 1:
                        r = sd_bus_message_append(m, "o", PICK(in, paths));
                        break;
                case 2:
                        r = sd_bus_message_append(m, "u", (uint32_t)take(in));
                        break;
                default:
                        r = sd_bus_message_append(m, "as", 1, PICK(in, properties));
                }
        return r;
}

static void on_device(void *userdata, const struct bluez_device *d, unsigned what)
{
        size_t *sum = userdata;
        *sum += strlen(d->path) + strlen(d->name) + strlen(d->address) + what + (d->adapter_path ? 1 : 0);
}

static void on_adapter(void *userdata, const struct bluez_adapter *a, bool removed)
{
        size_t *sum = userdata;
        *sum += strlen(a->path) + strlen(a->name) + removed;
}

static void on_notification(void *userdata, const char *path, const uint8_t *data, size_t len)
{
        size_t *sum = userdata;
        for (size_t i = 0; i < len; i++)
                *sum += data[i];
        *sum += strlen(path);
}

static void on_synced(void *userdata, enum bluez_error e, const char *message)
{
        size_t *sum = userdata;
        *sum += e + (message ? strlen(message) : 0);
}

static sd_bus *fake_bus(void)
{
        /* sd-bus builds messages only on a bus that has been started; one end of a socket pair
         * is enough, and nothing is ever sent on it. */
        static sd_bus *bus;
        if (bus)
                return bus;
        log_set_level(LOG_LEVEL_ERROR); /* every malformed message is logged as a warning */
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 || sd_bus_new(&bus) < 0 ||
                sd_bus_set_fd(bus, fds[0], fds[0]) < 0 || sd_bus_start(bus) < 0)
                abort();
        return bus;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static size_t sum;
        struct input in = {data, size};
        struct bluez b = {
                .h = {.adapter = on_adapter,
                        .device = on_device,
                        .notification = on_notification,
                        .synced = on_synced},
                .userdata = &sum,
        };
        sd_bus *bus = fake_bus();
        static uint64_t cookie;
        for (unsigned n = 0; in.n && n < 16; n++) {
                unsigned kind = take(&in) % 5;
                const char *path = PICK(&in, paths);
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
                int r;
                switch (kind) {
                case 0: /* GetManagedObjects reply body */
                        r = sd_bus_message_new_signal(
                                bus, &m, "/", "org.freedesktop.DBus.ObjectManager", "X");
                        if (r >= 0)
                                r = sd_bus_message_open_container(m, 'a', "{oa{sa{sv}}}");
                        for (unsigned i = take(&in) % 4; i > 0 && r >= 0; i--) {
                                if ((r = sd_bus_message_open_container(m, 'e', "oa{sa{sv}}")) < 0)
                                        break;
                                r = sd_bus_message_append(m, "o", PICK(&in, paths));
                                if (r >= 0)
                                        r = append_interfaces(m, &in);
                                if (r >= 0)
                                        r = sd_bus_message_close_container(m);
                        }
                        if (r >= 0)
                                r = sd_bus_message_close_container(m);
                        break;
                case 1:
                        r = sd_bus_message_new_signal(
                                bus, &m, "/", "org.freedesktop.DBus.ObjectManager", "InterfacesAdded");
                        if (r >= 0)
                                r = sd_bus_message_append(m, "o", path);
                        if (r >= 0)
                                r = append_interfaces(m, &in);
                        break;
                case 2:
                        r = sd_bus_message_new_signal(
                                bus, &m, "/", "org.freedesktop.DBus.ObjectManager", "InterfacesRemoved");
                        if (r >= 0)
                                r = sd_bus_message_append(
                                        m, "oas", path, 2, PICK(&in, interfaces), PICK(&in, interfaces));
                        break;
                case 3:
                        r = sd_bus_message_new_signal(
                                bus, &m, path, "org.freedesktop.DBus.Properties", "PropertiesChanged");
                        if (r >= 0)
                                r = sd_bus_message_append(m, "s", PICK(&in, interfaces));
                        if (r >= 0)
                                r = append_props(m, &in);
                        if (r >= 0)
                                r = sd_bus_message_append(m, "as", 2, PICK(&in, properties), "RSSI");
                        break;
                default:
                        r = sd_bus_message_new_signal(bus, &m, path, "org.freedesktop.DBus.Properties", "X");
                        if (r >= 0)
                                r = append_wrong_body(m, &in);
                }
                if (r < 0 || sd_bus_message_seal(m, ++cookie, 0) < 0 || sd_bus_message_rewind(m, true) < 0)
                        continue;
                static const sd_bus_message_handler_t handlers[] = {on_managed_objects, on_interfaces_added,
                        on_interfaces_removed, on_properties_changed};
                /* A wrong body goes to any handler; the others to their own. */
                sd_bus_message_handler_t h = kind < 4 ? handlers[kind] : handlers[take(&in) % 4];
                h(m, &b, NULL);
                check_tables(&b);
        }
        clear_objects(&b);
        free(b.adapters);
        free(b.devices);
        return 0;
}
