/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "diagnosis.h"
#include "macro.h"

static const struct diagnosis_info table[_DIAG_MAX] = {
        [DIAG_NONE] = {"ok", SEVERITY_INFO, "Working.", ""},
        [DIAG_NO_SYSTEM_BUS] = {"no_system_bus", SEVERITY_ERROR,
                "There is no system D-Bus socket (%s), so BluPow cannot reach BlueZ.",
                "In Home Assistant, the add-on needs host_dbus: true (BluPow's config.yaml sets it; "
                "reinstall "
                "the add-on if it was changed). Elsewhere, make sure dbus is running and "
                "DBUS_SYSTEM_BUS_ADDRESS points at its socket (usually "
                "unix:path=/run/dbus/system_bus_socket)."},
        [DIAG_DBUS_ACCESS_DENIED] = {"dbus_access_denied", SEVERITY_ERROR,
                "The system bus refused BluPow's messages to BlueZ (AccessDenied: %s).",
                "This is an AppArmor or D-Bus policy denial. Fixes, safest first: 1) keep BluPow's own "
                "AppArmor "
                "profile (apparmor.txt) and update the add-on so it is reloaded; 2) on Supervised/Ubuntu "
                "hosts, "
                "allow the add-on's profile to talk to org.bluez in the host's D-Bus policy; 3) as a last "
                "resort, "
                "turn off Protection mode or set apparmor: false. Look for 'apparmor=\"DENIED\"' with "
                "'operation=\"dbus_method_call\"' and 'name=\"org.bluez\"' in the host's journal or dmesg, "
                "and for 'An AppArmor policy "
                "prevents "
                "this sender from sending this message' in the add-on log."},
        [DIAG_BLUEZ_NOT_RUNNING] = {"bluez_not_running", SEVERITY_ERROR,
                "Nothing owns org.bluez on the system bus: bluetoothd is not running on the host.",
                "Start the Bluetooth service on the host (Home Assistant OS starts it when an adapter is "
                "present; "
                "elsewhere: systemctl start bluetooth). BluPow reconnects by itself when it appears."},
        [DIAG_NO_ADAPTER] = {"no_adapter", SEVERITY_ERROR, "BlueZ has no Bluetooth adapter.",
                "Plug in a Bluetooth adapter (a USB adapter on an extension cable works best) and check "
                "that the "
                "host sees it (Settings → System → Hardware, or bluetoothctl list)."},
        [DIAG_ADAPTER_MISSING] = {"adapter_missing", SEVERITY_ERROR,
                "The configured adapter does not exist (%s).",
                "Set the adapter option to one that exists, or plug the adapter back in."},
        [DIAG_ADAPTER_OFF] = {"adapter_off", SEVERITY_ERROR, "The Bluetooth adapter %s is powered off.",
                "Power it on with the button on the status page (POST /api/v1/adapter/power), or with "
                "'bluetoothctl power on' on the host."},
        [DIAG_ADAPTER_SHARED] = {"adapter_shared", SEVERITY_INFO,
                "Another program is scanning on the adapter (%s); BluPow shares it.",
                "Nothing to do: this is usually Home Assistant's own Bluetooth integration. BluPow waits "
                "for its "
                "scan instead of starting one. If polls time out, give BluPow its own adapter (adapter "
                "option)."},
        [DIAG_NOT_FOUND] = {"not_found", SEVERITY_ERROR, "The module %s was never seen advertising.",
                "Check the address (blupowd scan, or Scan on the status page), that the device has power, "
                "and "
                "that the adapter is within a few metres. Close the Renogy DC Home app or any other app "
                "that may "
                "be connected: a module accepts one connection and stops advertising while it has one. A "
                "Renogy "
                "inverter that sat idle may need a power cycle before it advertises again (off, 60 seconds, "
                "on)."},
        [DIAG_ASLEEP] = {"device_asleep", SEVERITY_WARNING,
                "The module stopped advertising and does not accept connections (%s).",
                "The device may be asleep or without power. Close the Renogy DC Home app or any other "
                "central "
                "(a module accepts one connection). If it stays silent, power-cycle the device or re-plug "
                "its "
                "BT module, then press Verify."},
        [DIAG_INVERTER_ASLEEP] = {"inverter_asleep", SEVERITY_WARNING,
                "The inverter stopped answering over Bluetooth (%s).",
                "Renogy inverters can stop answering until power-cycled: switch the inverter off, wait 60 "
                "seconds, switch it on, wait 2 minutes, then press Verify. Also close the Renogy DC Home "
                "app or "
                "any other central, since the inverter accepts one connection."},
        [DIAG_HELD_BY_OTHER_CENTRAL] = {"held_by_other_central", SEVERITY_WARNING,
                "Another central holds the module's only connection (%s).",
                "Close the Renogy DC Home app on every phone and tablet nearby (or disconnect a Renogy ONE "
                "Core "
                "or another integration using the same module). BluPow connects again on its next poll."},
        [DIAG_CONNECT_FAILED] = {"connect_failed", SEVERITY_WARNING, "Connecting to the module failed (%s).",
                "Usually transient. If it persists, move the adapter closer, close other apps that use the "
                "module, and press Verify to see the failing step."},
        [DIAG_WRONG_MODBUS_ID] = {"wrong_modbus_id", SEVERITY_ERROR,
                "The module connects but nothing answers at the configured Modbus id (%s).",
                "Set modbus_id for this device to the id that answered, then restart the add-on."},
        [DIAG_NO_REPLY] = {"no_reply", SEVERITY_ERROR,
                "The module connects but no device behind it answers (%s).",
                "Check the cable between the BT module and the device, and the device's Modbus id "
                "(standalone "
                "255, daisy chain 16/17 for controllers and 33-35 for batteries, hub 48-50 for batteries, "
                "96/97 "
                "for controllers, 32 for inverters)."},
        [DIAG_WEAK_SIGNAL] = {"weak_signal", SEVERITY_WARNING, "The radio link is poor: %s.",
                "Move the adapter closer to the module (a few metres, fewer walls), use a USB extension "
                "cable to "
                "get the adapter away from the host's USB 3 ports, or use a better adapter."},
        [DIAG_DUPLICATE_DEVICE] = {"duplicate_device", SEVERITY_ERROR, "%s.",
                "Remove one of the two entries from the add-on's devices option."},
        [DIAG_PROTOCOL_ERROR] = {"protocol_error", SEVERITY_WARNING, "The device answered with errors (%s).",
                "Usually transient. If it persists, check the device type in the options."},
};

const struct diagnosis_info *diagnosis_info(enum diagnosis_code c)
{
        return c < _DIAG_MAX ? &table[c] : &table[DIAG_NONE];
}

int diagnosis_from_string(const char *s)
{
        for (int i = 0; i < _DIAG_MAX; i++)
                if (streq(table[i].code, s))
                        return i;
        return -1;
}

void diagnosis_message(enum diagnosis_code c, const char *detail, char *buf, size_t size)
{
        const char *fmt = diagnosis_info(c)->message;
        const char *pct = strstr(fmt, "%s");
        if (!pct) {
                snprintf(buf, size, "%s", fmt);
                return;
        }
        snprintf(buf, size, "%.*s%s%s", (int)(pct - fmt), fmt, detail && *detail ? detail : "no detail",
                pct + 2);
}
