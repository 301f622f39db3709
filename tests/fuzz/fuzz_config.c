/* libFuzzer target for the config reader: any bytes, loaded and freed (LeakSanitizer checks
 * that nothing stays behind). Also checks the interface's promises on every input: a valid
 * result has its required keys and no message; a refused one has a message and is freed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ferry_config cfg;
    struct config_errors errors;
    int rc = config_load_data((const char *)data, size, "fuzz.conf", &cfg, &errors);

    if (rc == 0) {
        if (!cfg.component_jid || !cfg.component_secret || !cfg.legacy_protocol ||
            !cfg.legacy_server || !cfg.legacy_name || errors.count != 0)
            abort();
        (void)config_domain_allowed(&cfg, "example.org");
        (void)config_legacy_option(&cfg, "ssl");
    } else if (rc != -1 || errors.count == 0 || cfg.component_host) {
        abort();
    }
    config_free(&cfg);
    config_errors_free(&errors);
    return 0;
}
