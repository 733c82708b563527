/* SPDX-License-Identifier: MIT */
#pragma once

enum {
        EXIT_OK = 0,
        EXIT_RUNTIME = 1,
        EXIT_USAGE = 2,
};

/* Each takes the arguments after "blupowd" (argv[0] is the command name). */
int cmd_decode(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_verify(int argc, char **argv);
