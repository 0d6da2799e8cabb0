/* Helpers for the hal tests: fixture paths and scratch sysfs trees. Header-only so
 * each test program stays one file. */
#ifndef HAL_TEST_H
#define HAL_TEST_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef HAL_FIXTURES
#error "HAL_FIXTURES must name tests/hal/fixtures (tests/hal/tests.mk sets it)"
#endif

/* Absolute path of a checked-in fixture tree, e.g. fixture("rpi4"). */
static inline const char *fixture(const char *board)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", HAL_FIXTURES, board);
    return path;
}

/* mkdir -p for the directory part of `path`. */
static inline int mkdirs_for(const char *path)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

/* Write `text` to root/rel, creating directories. Returns 0 or -1. */
static inline int put_file(const char *root, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    if (mkdirs_for(path) < 0)
        return -1;
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int ok = fputs(text, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* A fresh empty directory under $TMPDIR; the caller removes it with rm_tree. */
static inline char *scratch_root(char *buf, size_t cap)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, cap, "%s/kvmesh-hal.XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(buf);
}

static inline int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static inline void rm_tree(const char *root)
{
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
