/*
 * cfd_params.h - core parameters from the configuration's filter section.
 */
#ifndef CFD_DAEMON_CFD_PARAMS_H
#define CFD_DAEMON_CFD_PARAMS_H

#include <stddef.h>

#include "cfg.h"
#include "cl.h"

/*
 * Fills *ret_params from cfg (classes and filter).  Returns 0, or -1 with
 * a message naming the config file, line and key in errbuf when core
 * refuses the values.
 */
int cfd_params_from_cfg(const struct cfg *cfg, struct cl_params *ret_params,
                        char *errbuf, size_t errsize);

#endif /* CFD_DAEMON_CFD_PARAMS_H */
