/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "commands.h"
#include "frame-decode.h"
#include "readings-json.h"

int cmd_decode(int argc, char **argv)
{
        if (argc < 3) {
                fprintf(stderr, "usage: blupowd decode FAMILY REG:HEX [REG:HEX ...]\n");
                return EXIT_USAGE;
        }
        const struct renogy_family *fam = renogy_family_find(argv[1]);
        if (!fam) {
                fprintf(stderr,
                        "blupowd decode: unknown family '%s' (controller, dcc, battery, inverter, shunt)\n",
                        argv[1]);
                return EXIT_USAGE;
        }
        struct renogy_readings readings;
        char err[256];
        if (frames_decode(fam, argv + 2, argc - 2, &readings, err, sizeof err) < 0) {
                fprintf(stderr, "blupowd decode: %s\n", err);
                return EXIT_USAGE;
        }
        json_t *out =
                json_pack("{s:s, s:o}", "family", fam->name, "readings", readings_json(&readings, false));
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
        fputc('\n', stdout);
        json_decref(out);
        return EXIT_OK;
}
