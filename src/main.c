/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "macro.h"

static void usage(FILE *f)
{
        fprintf(f, "blupowd " BLUPOW_VERSION " - Renogy Bluetooth devices for Home Assistant\n"
                   "\n"
                   "usage:\n"
                   "  blupowd [serve] [--options FILE] [--data-dir DIR] [--db FILE] [--port N]\n"
                   "                  [--bind ADDRESS] [--web-dir DIR]\n"
                   "  blupowd verify [DEVICE] [--json] [--options FILE] [--port N] [--data-dir DIR]\n"
                   "                 [--standalone]\n"
                   "  blupowd scan [--seconds N] [--json] [--options FILE] [--adapter hciN]\n"
                   "  blupowd decode FAMILY REG:HEX [REG:HEX ...]\n"
                   "  blupowd --version | --help\n"
                   "\n"
                   "verify asks the daemon running on --port (8099) to read each device end to\n"
                   "end, or reads them itself when none runs (or with --standalone); it presents\n"
                   "the api_token, or the add-on's token from --data-dir (/data).\n"
                   "FAMILY is controller, dcc, battery, inverter or shunt. Exit codes: 0 ok,\n"
                   "1 runtime failure, 2 bad usage or configuration.\n");
}

int main(int argc, char **argv)
{
        if (argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
                usage(stdout);
                return EXIT_OK;
        }
        if (argc >= 2 && streq(argv[1], "--version")) {
                printf("blupowd %s\n", BLUPOW_VERSION);
                return EXIT_OK;
        }
        static const struct {
                const char *name;
                int (*run)(int argc, char **argv);
        } commands[] = {
                {"decode", cmd_decode},
                {"serve", cmd_serve},
                {"verify", cmd_verify},
                {"scan", cmd_scan},
        };
        if (argc >= 2 && argv[1][0] != '-') {
                for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                        if (streq(argv[1], commands[i].name))
                                return commands[i].run(argc - 1, argv + 1);
                fprintf(stderr, "blupowd: unknown command '%s'\n", argv[1]);
                usage(stderr);
                return EXIT_USAGE;
        }
        /* No command: serve, with the options given. */
        return cmd_serve(argc, argv);
}
