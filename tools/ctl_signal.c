#include "ctl_signal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

volatile sig_atomic_t ctl_stop_signal;

static void on_stop_signal(int sig)
{
        ctl_stop_signal = sig;
}

int ctl_catch_stop_signals(const char *command)
{
        struct sigaction sa;

        ctl_stop_signal = 0;
        memset(&sa, 0, sizeof(sa));
        sigemptyset(&sa.sa_mask);
        sa.sa_handler = on_stop_signal;
        if (sigaction(SIGTERM, &sa, NULL) == 0 &&
            sigaction(SIGINT, &sa, NULL) == 0)
                return 0;
        fprintf(stderr, "confidentctl %s: sigaction: %s\n", command,
                strerror(errno));
        return -1;
}
