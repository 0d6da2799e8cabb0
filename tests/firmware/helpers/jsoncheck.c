/*
 * jsoncheck: the shell tests' JSON check, with the firmware's strict reader.
 *
 *   jsoncheck [KEY[:TYPE]]... < lines
 *
 * Every non-empty line of stdin must be one JSON object that has each KEY (a dotted path
 * into nested objects, e.g. device.identifiers) with the TYPE (number, string, bool,
 * null, object, array, or numnull for a number or null). Prints what is wrong and exits
 * 1, else exits 0.
 *
 *   jsoncheck --get KEY < line    prints the value of KEY (strings unquoted)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fw_json.h"

static const char *const type_names[] = { "null", "bool", "number", "string", "array", "object" };

/* Index of the value at a dotted path, or -1. */
static int lookup(const char *js, const fw_json_tok *t, const char *path)
{
    int cur = 0;
    char part[128];
    while (*path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof part) return -1;
        memcpy(part, path, n);
        part[n] = '\0';
        cur = fw_json_get(js, t, cur, part);
        if (cur < 0) return -1;
        path += n + (path[n] == '.');
    }
    return cur;
}

int main(int argc, char **argv)
{
    static char line[1 << 20];
    static fw_json_tok t[4096];
    int bad = 0, lineno = 0;
    const char *get = argc == 3 && !strcmp(argv[1], "--get") ? argv[2] : NULL;
    while (fgets(line, sizeof line, stdin)) {
        size_t len = strcspn(line, "\n");
        line[len] = '\0';
        lineno++;
        if (!len) continue;
        char err[128];
        if (fw_json_parse(line, len, t, 4096, err, sizeof err) < 0 || t[0].type != FW_JSON_OBJECT) {
            printf("line %d: not a JSON object: %s: %.120s\n", lineno, err, line);
            bad = 1;
            continue;
        }
        if (get) {
            int v = lookup(line, t, get);
            if (v < 0) return 1;
            if (t[v].type == FW_JSON_STRING) {
                static char out[1 << 20];
                fw_json_string(line, &t[v], out, sizeof out);
                printf("%s\n", out);
            } else {
                printf("%.*s\n", (int)(t[v].end - t[v].start), line + t[v].start);
            }
            return 0;
        }
        for (int i = 1; i < argc; i++) {
            char key[256];
            snprintf(key, sizeof key, "%s", argv[i]);
            char *type = strchr(key, ':');
            if (type) *type++ = '\0';
            int v = lookup(line, t, key);
            if (v < 0) {
                printf("line %d: no '%s': %.200s\n", lineno, key, line);
                bad = 1;
                continue;
            }
            if (!type) continue;
            const char *have = type_names[t[v].type];
            bool ok = !strcmp(type, have) || (!strcmp(type, "numnull") && (t[v].type == FW_JSON_NUMBER || t[v].type == FW_JSON_NULL));
            if (!ok) {
                printf("line %d: '%s' is %s, not %s\n", lineno, key, have, type);
                bad = 1;
            }
        }
    }
    if (get) return 1;
    if (!lineno) {
        printf("no input\n");
        return 1;
    }
    return bad;
}
