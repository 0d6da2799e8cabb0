/* The linux GPIO backend against libgpiod 2.x, with every libgpiod call it makes
 * wrapped at link time (-Wl,--wrap=gpiod_..., see tests/hal/tests.mk). The structure
 * follows test_gpio_linux_v1.c: the wrappers act as a small kernel (two chips, named
 * lines, values, queued edges) and append each call with its arguments to a log; the
 * tests assert that log call by call, and inject failures through errno the way
 * libgpiod reports them.
 *
 * No libgpiod 2.x library exists on the build machines (Debian 12 has 1.6) and none is
 * linked: hal/src/gpio_linux_v2.c is compiled for this test against the 2.x headers
 * (tools/setup.sh unpacks them into /opt/kvmesh/libgpiod2), so a 2.x call without a
 * wrapper here is an undefined reference and the test does not link.
 *
 * 2.x differs from 1.6 in what there is to check: the chip is opened only to resolve
 * the line and make the request, and the settings, line config and request config
 * are allocated per request and must all be freed again. The fake objects count
 * themselves, and each test checks that only the request (and an input's edge buffer)
 * outlive a request, and that nothing outlives a release. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#ifdef HAL_GPIOD2_MISSING

/* tests/hal/tests.mk found no libgpiod 2.x headers: fail, naming the fix. */
static void libgpiod2_headers_present(void **state)
{
    (void)state;
    fail_msg("libgpiod 2.x headers missing (%s): run tools/setup.sh, or set GPIOD2_DIR",
             HAL_GPIOD2_MISSING);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(libgpiod2_headers_present) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

#include <gpiod.h>

#include "hal.h"

#ifndef HAL_GPIOD2_VERSION
#error "HAL_GPIOD2_VERSION must name the libgpiod 2.x headers' version (tests/hal/tests.mk)"
#endif

#if defined(__aarch64__)
#define TARGET_ARCH "aarch64"
#elif defined(__x86_64__)
#define TARGET_ARCH "x86_64"
#else
#define TARGET_ARCH "another architecture"
#endif

/* ---- the fake kernel and libgpiod's objects ---------------------------------------- */

/* libgpiod's structs are opaque; the fake gives them a body. Every object has `live`,
 * so a wrapper can assert it was handed an object that exists (not freed, not made
 * up), and a count per kind finds leaks. */
struct gpiod_chip { int live; int idx; };
struct gpiod_chip_info { int live; int chip; };
struct gpiod_line_settings {
    int live;
    enum gpiod_line_direction dir;
    enum gpiod_line_edge edge;
    enum gpiod_line_bias bias;
    bool active_low;
    enum gpiod_line_value value;
};
struct gpiod_line_config { int live; size_t n; unsigned offset; struct gpiod_line_settings s; };
struct gpiod_request_config { int live; char consumer[32]; };
struct gpiod_edge_event { enum gpiod_edge_event_type type; uint64_t ts_ns; unsigned offset; };
struct gpiod_edge_event_buffer { int live; size_t capacity, n; struct gpiod_edge_event ev[4]; };
struct gpiod_line_request { int live; int chip; unsigned offset; struct gpiod_line_settings s; };

/* take_() finds `live` at the start of every pooled object. */
_Static_assert(offsetof(struct gpiod_chip, live) == 0, "live first");
_Static_assert(offsetof(struct gpiod_chip_info, live) == 0, "live first");
_Static_assert(offsetof(struct gpiod_line_settings, live) == 0, "live first");
_Static_assert(offsetof(struct gpiod_line_config, live) == 0, "live first");
_Static_assert(offsetof(struct gpiod_request_config, live) == 0, "live first");
_Static_assert(offsetof(struct gpiod_edge_event_buffer, live) == 0, "live first");
_Static_assert(offsetof(struct gpiod_line_request, live) == 0, "live first");

#define NLINES 58
#define POOL 4
static const char *const chip_labels[2] = { "pinctrl-bcm2711", "raspberrypi-exp-gpio" };
static struct { int requested; enum gpiod_line_value value; } lines[2][NLINES];

static struct gpiod_chip chips[2][POOL];
static struct gpiod_chip_info infos[POOL];
static struct gpiod_line_settings settings_pool[POOL];
static struct gpiod_line_config lcfg_pool[POOL];
static struct gpiod_request_config rcfg_pool[POOL];
static struct gpiod_edge_event_buffer buf_pool[POOL];
static struct gpiod_line_request req_pool[POOL];

/* Live objects of each kind. */
static int n_chips, n_infos, n_settings, n_lcfgs, n_rcfgs, n_bufs, n_reqs;

/* Edges the kernel has queued (for whichever line has edges requested). */
static struct { int pending; enum gpiod_edge_event_type type; uint64_t ts_ns; } edge;

/* Failure injection: errno for the next call of that kind, 0 for success. */
static int fail_open_errno, fail_request_errno;
/* Which constructor returns NULL (ENOMEM) next, by its log name; NULL for none. */
static const char *fail_new;
static int fail_info, fail_set_edge, fail_set, fail_get, fail_wait, fail_read;

#define GPIOD_FAKE_LOG_MAX 64
#define GPIOD_FAKE_LOG_LINE 128
#include "gpiod_fake.h"

/* What is still allocated: chips, requests and edge buffers as given; the settings,
 * line configs, request configs and chip infos never outlive a call into hal. */
static void expect_live(int chips_, int reqs, int bufs)
{
    assert_int_equal(n_chips, chips_);
    assert_int_equal(n_reqs, reqs);
    assert_int_equal(n_bufs, bufs);
    assert_int_equal(n_settings, 0);
    assert_int_equal(n_lcfgs, 0);
    assert_int_equal(n_rcfgs, 0);
    assert_int_equal(n_infos, 0);
}

/* Take a free slot from a pool; `fail_name` matching fail_new makes it fail. */
#define TAKE(pool, counter, name) take_((pool), sizeof(pool)[0], POOL, &(counter), (name))
static void *take_(void *pool, size_t size, size_t n, int *counter, const char *name)
{
    if (fail_new != NULL && strcmp(fail_new, name) == 0) {
        fail_new = NULL;
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        int *live = (int *)(void *)((char *)pool + i * size);   /* `live` comes first */
        if (!*live) {
            memset(live, 0, size);
            *live = 1;
            ++*counter;
            return live;
        }
    }
    fail_msg("%s: pool exhausted (a leak?)", name);
    return NULL;
}

static void drop(int *live, int *counter)
{
    assert_true(*live);     /* double free or a pointer libgpiod never gave out */
    *live = 0;
    --*counter;
}

/* Enum values by name, so the log reads like the call; a value outside the enum
 * shows as a number and fails the comparison. */
static const char *num_name(int v)
{
    static char buf[4][16];
    static unsigned next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "?%d", v);
    return b;
}
static const char *dir_name(enum gpiod_line_direction d)
{
    switch (d) {
    case GPIOD_LINE_DIRECTION_AS_IS:  return "as-is";
    case GPIOD_LINE_DIRECTION_INPUT:  return "input";
    case GPIOD_LINE_DIRECTION_OUTPUT: return "output";
    }
    return num_name((int)d);
}
static const char *edge_name(enum gpiod_line_edge e)
{
    switch (e) {
    case GPIOD_LINE_EDGE_NONE:    return "none";
    case GPIOD_LINE_EDGE_RISING:  return "rising";
    case GPIOD_LINE_EDGE_FALLING: return "falling";
    case GPIOD_LINE_EDGE_BOTH:    return "both";
    }
    return num_name((int)e);
}
static const char *bias_name(enum gpiod_line_bias b)
{
    switch (b) {
    case GPIOD_LINE_BIAS_AS_IS:     return "as-is";
    case GPIOD_LINE_BIAS_UNKNOWN:   return "unknown";
    case GPIOD_LINE_BIAS_DISABLED:  return "disabled";
    case GPIOD_LINE_BIAS_PULL_UP:   return "pull-up";
    case GPIOD_LINE_BIAS_PULL_DOWN: return "pull-down";
    }
    return num_name((int)b);
}
static const char *value_name(enum gpiod_line_value v)
{
    switch (v) {
    case GPIOD_LINE_VALUE_ERROR:    return "error";
    case GPIOD_LINE_VALUE_INACTIVE: return "inactive";
    case GPIOD_LINE_VALUE_ACTIVE:   return "active";
    }
    return num_name((int)v);
}

/* ---- the wrappers: chips ------------------------------------------------------------ */

struct gpiod_chip *__wrap_gpiod_chip_open(const char *path);
struct gpiod_chip *__wrap_gpiod_chip_open(const char *path)
{
    logf_("chip_open %s", path);
    int c = chip_of(path);
    if (fail_open_errno) {
        errno = fail_open_errno;
        fail_open_errno = 0;
        return NULL;
    }
    if (c < 0) {
        errno = ENOENT;
        return NULL;
    }
    struct gpiod_chip *chip = TAKE(chips[c], n_chips, "chip_open");
    chip->idx = c;
    return chip;
}

void __wrap_gpiod_chip_close(struct gpiod_chip *chip);
void __wrap_gpiod_chip_close(struct gpiod_chip *chip)
{
    assert_non_null(chip);
    logf_("chip_close %d", chip->idx);
    drop(&chip->live, &n_chips);
}

struct gpiod_chip_info *__wrap_gpiod_chip_get_info(struct gpiod_chip *chip);
struct gpiod_chip_info *__wrap_gpiod_chip_get_info(struct gpiod_chip *chip)
{
    assert_true(chip->live);
    logf_("chip_get_info %d", chip->idx);
    if (fail_info) {
        fail_info = 0;
        errno = EIO;
        return NULL;
    }
    struct gpiod_chip_info *info = TAKE(infos, n_infos, "chip_get_info");
    info->chip = chip->idx;
    return info;
}

const char *__wrap_gpiod_chip_info_get_label(struct gpiod_chip_info *info);
const char *__wrap_gpiod_chip_info_get_label(struct gpiod_chip_info *info)
{
    assert_true(info->live);
    logf_("info_label %d", info->chip);
    return chip_labels[info->chip];
}

void __wrap_gpiod_chip_info_free(struct gpiod_chip_info *info);
void __wrap_gpiod_chip_info_free(struct gpiod_chip_info *info)
{
    assert_non_null(info);
    logf_("info_free %d", info->chip);
    drop(&info->live, &n_infos);
}

int __wrap_gpiod_chip_get_line_offset_from_name(struct gpiod_chip *chip, const char *name);
int __wrap_gpiod_chip_get_line_offset_from_name(struct gpiod_chip *chip, const char *name)
{
    assert_true(chip->live);
    logf_("offset_from_name %d %s", chip->idx, name);
    unsigned off;
    char junk;
    if (chip->idx == 0 && sscanf(name, "GPIO%u%c", &off, &junk) == 1 && off < 28)
        return (int)off;
    errno = ENOENT;         /* documented: "not exposed by the chip" */
    return -1;
}

/* ---- line settings, line config, request config ----------------------------------- */

struct gpiod_line_settings *__wrap_gpiod_line_settings_new(void);
struct gpiod_line_settings *__wrap_gpiod_line_settings_new(void)
{
    logf_("settings_new");
    struct gpiod_line_settings *s = TAKE(settings_pool, n_settings, "settings_new");
    if (s != NULL) {        /* libgpiod's defaults */
        s->dir = GPIOD_LINE_DIRECTION_AS_IS;
        s->edge = GPIOD_LINE_EDGE_NONE;
        s->bias = GPIOD_LINE_BIAS_AS_IS;
        s->value = GPIOD_LINE_VALUE_INACTIVE;
    }
    return s;
}

void __wrap_gpiod_line_settings_free(struct gpiod_line_settings *s);
void __wrap_gpiod_line_settings_free(struct gpiod_line_settings *s)
{
    assert_non_null(s);
    logf_("settings_free");
    drop(&s->live, &n_settings);
}

int __wrap_gpiod_line_settings_set_direction(struct gpiod_line_settings *s,
                                             enum gpiod_line_direction d);
int __wrap_gpiod_line_settings_set_direction(struct gpiod_line_settings *s,
                                             enum gpiod_line_direction d)
{
    assert_true(s->live);
    logf_("set_direction %s", dir_name(d));
    s->dir = d;
    return 0;
}

int __wrap_gpiod_line_settings_set_output_value(struct gpiod_line_settings *s,
                                                enum gpiod_line_value v);
int __wrap_gpiod_line_settings_set_output_value(struct gpiod_line_settings *s,
                                                enum gpiod_line_value v)
{
    assert_true(s->live);
    logf_("set_output_value %s", value_name(v));
    s->value = v;
    return 0;
}

int __wrap_gpiod_line_settings_set_edge_detection(struct gpiod_line_settings *s,
                                                  enum gpiod_line_edge e);
int __wrap_gpiod_line_settings_set_edge_detection(struct gpiod_line_settings *s,
                                                  enum gpiod_line_edge e)
{
    assert_true(s->live);
    logf_("set_edge_detection %s", edge_name(e));
    if (fail_set_edge) {
        fail_set_edge = 0;
        errno = EINVAL;
        return -1;
    }
    s->edge = e;
    return 0;
}

int __wrap_gpiod_line_settings_set_bias(struct gpiod_line_settings *s, enum gpiod_line_bias b);
int __wrap_gpiod_line_settings_set_bias(struct gpiod_line_settings *s, enum gpiod_line_bias b)
{
    assert_true(s->live);
    logf_("set_bias %s", bias_name(b));
    s->bias = b;
    return 0;
}

void __wrap_gpiod_line_settings_set_active_low(struct gpiod_line_settings *s, bool active_low);
void __wrap_gpiod_line_settings_set_active_low(struct gpiod_line_settings *s, bool active_low)
{
    assert_true(s->live);
    logf_("set_active_low %d", active_low);
    s->active_low = active_low;
}

struct gpiod_line_config *__wrap_gpiod_line_config_new(void);
struct gpiod_line_config *__wrap_gpiod_line_config_new(void)
{
    logf_("line_config_new");
    return TAKE(lcfg_pool, n_lcfgs, "line_config_new");
}

void __wrap_gpiod_line_config_free(struct gpiod_line_config *c);
void __wrap_gpiod_line_config_free(struct gpiod_line_config *c)
{
    assert_non_null(c);
    logf_("line_config_free");
    drop(&c->live, &n_lcfgs);
}

int __wrap_gpiod_line_config_add_line_settings(struct gpiod_line_config *c,
                                               const unsigned int *offsets, size_t n,
                                               struct gpiod_line_settings *s);
int __wrap_gpiod_line_config_add_line_settings(struct gpiod_line_config *c,
                                               const unsigned int *offsets, size_t n,
                                               struct gpiod_line_settings *s)
{
    assert_true(c->live);
    assert_true(s->live);
    logf_("add_line_settings %u n=%zu", n > 0 ? offsets[0] : 0u, n);
    /* libgpiod copies the settings: the caller may free its object right after. */
    c->n = n;
    c->offset = offsets[0];
    c->s = *s;
    return 0;
}

struct gpiod_request_config *__wrap_gpiod_request_config_new(void);
struct gpiod_request_config *__wrap_gpiod_request_config_new(void)
{
    logf_("request_config_new");
    return TAKE(rcfg_pool, n_rcfgs, "request_config_new");
}

void __wrap_gpiod_request_config_free(struct gpiod_request_config *c);
void __wrap_gpiod_request_config_free(struct gpiod_request_config *c)
{
    assert_non_null(c);
    logf_("request_config_free");
    drop(&c->live, &n_rcfgs);
}

void __wrap_gpiod_request_config_set_consumer(struct gpiod_request_config *c,
                                              const char *consumer);
void __wrap_gpiod_request_config_set_consumer(struct gpiod_request_config *c,
                                              const char *consumer)
{
    assert_true(c->live);
    logf_("set_consumer %s", consumer);
    snprintf(c->consumer, sizeof c->consumer, "%s", consumer);   /* copied, as libgpiod does */
}

/* ---- edge event buffers and events -------------------------------------------------- */

struct gpiod_edge_event_buffer *__wrap_gpiod_edge_event_buffer_new(size_t capacity);
struct gpiod_edge_event_buffer *__wrap_gpiod_edge_event_buffer_new(size_t capacity)
{
    logf_("buffer_new %zu", capacity);
    struct gpiod_edge_event_buffer *b = TAKE(buf_pool, n_bufs, "buffer_new");
    if (b != NULL) {
        assert_in_range(capacity, 1, sizeof b->ev / sizeof b->ev[0]);
        b->capacity = capacity;
    }
    return b;
}

void __wrap_gpiod_edge_event_buffer_free(struct gpiod_edge_event_buffer *b);
void __wrap_gpiod_edge_event_buffer_free(struct gpiod_edge_event_buffer *b)
{
    assert_non_null(b);
    logf_("buffer_free");
    drop(&b->live, &n_bufs);
}

struct gpiod_edge_event *__wrap_gpiod_edge_event_buffer_get_event(
    struct gpiod_edge_event_buffer *b, unsigned long index);
struct gpiod_edge_event *__wrap_gpiod_edge_event_buffer_get_event(
    struct gpiod_edge_event_buffer *b, unsigned long index)
{
    assert_true(b->live);
    logf_("buffer_get_event %lu", index);
    if (index >= b->n) {
        errno = EINVAL;
        return NULL;
    }
    return &b->ev[index];
}

/* An event is owned by its buffer: valid only while that buffer lives. */
static int event_live(const struct gpiod_edge_event *e)
{
    for (unsigned i = 0; i < POOL; i++)
        if (e >= buf_pool[i].ev && e < buf_pool[i].ev + buf_pool[i].n)
            return buf_pool[i].live;
    return 0;
}

enum gpiod_edge_event_type __wrap_gpiod_edge_event_get_event_type(struct gpiod_edge_event *e);
enum gpiod_edge_event_type __wrap_gpiod_edge_event_get_event_type(struct gpiod_edge_event *e)
{
    assert_true(event_live(e));
    logf_("event_type %u", e->offset);
    return e->type;
}

uint64_t __wrap_gpiod_edge_event_get_timestamp_ns(struct gpiod_edge_event *e);
uint64_t __wrap_gpiod_edge_event_get_timestamp_ns(struct gpiod_edge_event *e)
{
    assert_true(event_live(e));
    logf_("event_timestamp %u", e->offset);
    return e->ts_ns;
}

/* ---- line requests ------------------------------------------------------------------ */

static const char *req_str(const struct gpiod_line_request *r)
{
    static char buf[2][24];
    static unsigned next;
    char *b = buf[next++ % 2];
    snprintf(b, sizeof buf[0], "%d/%u", r->chip, r->offset);
    return b;
}

struct gpiod_line_request *__wrap_gpiod_chip_request_lines(struct gpiod_chip *chip,
                                                           struct gpiod_request_config *rc,
                                                           struct gpiod_line_config *lc);
struct gpiod_line_request *__wrap_gpiod_chip_request_lines(struct gpiod_chip *chip,
                                                           struct gpiod_request_config *rc,
                                                           struct gpiod_line_config *lc)
{
    assert_true(chip->live);
    assert_true(lc->live);
    if (rc != NULL)
        assert_true(rc->live);
    const struct gpiod_line_settings *s = &lc->s;
    logf_("request_lines %d consumer=%s offsets=%u n=%zu dir=%s value=%s edge=%s bias=%s "
          "active_low=%d", chip->idx, rc != NULL ? rc->consumer : "(none)", lc->offset, lc->n,
          dir_name(s->dir), value_name(s->value), edge_name(s->edge), bias_name(s->bias),
          s->active_low);
    if (fail_request_errno) {
        errno = fail_request_errno;
        fail_request_errno = 0;
        return NULL;
    }
    /* What the kernel checks (GPIO_V2_GET_LINE_IOCTL). */
    if (lc->n != 1 || lc->offset >= NLINES ||
        (s->dir == GPIOD_LINE_DIRECTION_OUTPUT && s->edge != GPIOD_LINE_EDGE_NONE)) {
        errno = EINVAL;
        return NULL;
    }
    if (lines[chip->idx][lc->offset].requested) {
        errno = EBUSY;
        return NULL;
    }
    struct gpiod_line_request *r = TAKE(req_pool, n_reqs, "request_lines");
    r->chip = chip->idx;
    r->offset = lc->offset;
    r->s = *s;
    lines[r->chip][r->offset].requested = 1;
    if (s->dir == GPIOD_LINE_DIRECTION_OUTPUT)
        lines[r->chip][r->offset].value = s->value;
    return r;
}

void __wrap_gpiod_line_request_release(struct gpiod_line_request *r);
void __wrap_gpiod_line_request_release(struct gpiod_line_request *r)
{
    assert_non_null(r);
    logf_("request_release %s", req_str(r));
    lines[r->chip][r->offset].requested = 0;
    drop(&r->live, &n_reqs);
}

int __wrap_gpiod_line_request_set_value(struct gpiod_line_request *r, unsigned int offset,
                                        enum gpiod_line_value v);
int __wrap_gpiod_line_request_set_value(struct gpiod_line_request *r, unsigned int offset,
                                        enum gpiod_line_value v)
{
    assert_true(r->live);     /* the request outlives the chip it came from */
    logf_("set_value %s offset=%u %s", req_str(r), offset, value_name(v));
    if (fail_set) {
        fail_set = 0;
        errno = EIO;
        return -1;
    }
    if (offset != r->offset || r->s.dir != GPIOD_LINE_DIRECTION_OUTPUT) {
        errno = EINVAL;     /* not in the request / EPERM from the kernel for an input */
        return -1;
    }
    lines[r->chip][offset].value = v;
    return 0;
}

enum gpiod_line_value __wrap_gpiod_line_request_get_value(struct gpiod_line_request *r,
                                                          unsigned int offset);
enum gpiod_line_value __wrap_gpiod_line_request_get_value(struct gpiod_line_request *r,
                                                          unsigned int offset)
{
    assert_true(r->live);
    logf_("get_value %s offset=%u", req_str(r), offset);
    if (fail_get || offset != r->offset) {
        fail_get = 0;
        errno = offset != r->offset ? EINVAL : EIO;
        return GPIOD_LINE_VALUE_ERROR;
    }
    return lines[r->chip][offset].value;
}

int __wrap_gpiod_line_request_wait_edge_events(struct gpiod_line_request *r, int64_t timeout_ns);
int __wrap_gpiod_line_request_wait_edge_events(struct gpiod_line_request *r, int64_t timeout_ns)
{
    assert_true(r->live);
    logf_("wait_edge_events %s %lldns", req_str(r), (long long)timeout_ns);
    if (fail_wait) {
        fail_wait = 0;
        errno = EIO;
        return -1;
    }
    return edge.pending > 0;
}

int __wrap_gpiod_line_request_read_edge_events(struct gpiod_line_request *r,
                                               struct gpiod_edge_event_buffer *b,
                                               size_t max_events);
int __wrap_gpiod_line_request_read_edge_events(struct gpiod_line_request *r,
                                               struct gpiod_edge_event_buffer *b,
                                               size_t max_events)
{
    assert_true(r->live);
    assert_non_null(b);
    assert_true(b->live);
    logf_("read_edge_events %s max=%zu", req_str(r), max_events);
    assert_true(max_events >= 1 && max_events <= b->capacity);
    if (fail_read) {
        fail_read = 0;
        errno = EIO;
        return -1;
    }
    /* The real call blocks when nothing is queued; hal must never get here then. */
    assert_true(edge.pending > 0);
    b->n = 0;
    while (edge.pending > 0 && b->n < max_events) {
        b->ev[b->n++] = (struct gpiod_edge_event){ edge.type, edge.ts_ns, r->offset };
        edge.pending--;
    }
    return (int)b->n;
}

int __wrap_gpiod_line_request_get_fd(struct gpiod_line_request *r);
int __wrap_gpiod_line_request_get_fd(struct gpiod_line_request *r)
{
    assert_true(r->live);
    logf_("request_fd %s", req_str(r));
    return 42;
}

/* ---- tests -------------------------------------------------------------------------- */

static int reset(void **state)
{
    (void)state;
    memset(lines, 0, sizeof lines);
    memset(chips, 0, sizeof chips);
    memset(infos, 0, sizeof infos);
    memset(settings_pool, 0, sizeof settings_pool);
    memset(lcfg_pool, 0, sizeof lcfg_pool);
    memset(rcfg_pool, 0, sizeof rcfg_pool);
    memset(buf_pool, 0, sizeof buf_pool);
    memset(req_pool, 0, sizeof req_pool);
    n_chips = n_infos = n_settings = n_lcfgs = n_rcfgs = n_bufs = n_reqs = 0;
    memset(&edge, 0, sizeof edge);
    fail_open_errno = fail_request_errno = 0;
    fail_new = NULL;
    fail_info = fail_set_edge = fail_set = fail_get = fail_wait = fail_read = 0;
    log_n = 0;
    return 0;
}

static void built_against_2x(void **state)
{
    (void)state;
    /* Says what ran, so a log shows the 2.x backend was exercised on this target
     * (the header is plain C, and nothing from libgpiod is linked, so the test runs
     * natively and under qemu alike). */
    print_message("libgpiod " HAL_GPIOD2_VERSION " headers; backend and wrappers built for "
                  TARGET_ARCH "; no libgpiod linked\n");
    assert_int_equal(strncmp(HAL_GPIOD2_VERSION, "2.", 2), 0);
    assert_int_equal(hal_gpio_linux_api, 2);
    assert_string_equal(hal_gpio_linux_ops.name, "linux");
}

static void led_output_by_name(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    struct hal_led led;
    struct hal_gpio_request r = hal_led_line_request("gpiochip0", "GPIO17");
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_OK);
    assert_int_equal(l.offset, 17);
    EXPECT_LOG("chip_open /dev/gpiochip0",
               "offset_from_name 0 GPIO17",
               "settings_new", "line_config_new", "request_config_new",
               "set_direction output", "set_output_value inactive",
               "set_bias as-is", "set_active_low 0",
               "add_line_settings 17 n=1",
               "set_consumer kvmesh-led",
               "request_lines 0 consumer=kvmesh-led offsets=17 n=1 dir=output value=inactive "
               "edge=none bias=as-is active_low=0",
               "request_config_free", "line_config_free", "settings_free",
               "chip_close 0");
    /* Only the request lives on: the chip is closed, the configs freed, and an output
     * has no edge buffer. */
    expect_live(0, 1, 0);
    /* The LED writes through set_value, and only on change. */
    assert_int_equal(hal_led_init(&led, &l, 0), HAL_OK);
    assert_int_equal(hal_led_set_pattern(&led, HAL_LED_BUSY, 0), HAL_OK);
    assert_int_equal(hal_led_tick(&led, 50), HAL_OK);
    assert_int_equal(hal_led_tick(&led, 100), HAL_OK);
    assert_int_equal(hal_led_tick(&led, 150), HAL_OK);
    assert_int_equal(hal_led_tick(&led, 200), HAL_OK);
    EXPECT_LOG("set_value 0/17 offset=17 inactive", "set_value 0/17 offset=17 active",
               "set_value 0/17 offset=17 inactive", "set_value 0/17 offset=17 active");
    assert_int_equal(lines[0][17].value, GPIOD_LINE_VALUE_ACTIVE);
    /* A failed write is an I/O error, and is retried on the next tick. */
    fail_set = 1;
    assert_int_equal(hal_led_tick(&led, 300), HAL_EIO);
    assert_int_equal(hal_led_tick(&led, 301), HAL_OK);
    EXPECT_LOG("set_value 0/17 offset=17 inactive", "set_value 0/17 offset=17 inactive");
    /* An output reads back through the request. */
    int v = -1;
    assert_int_equal(hal_gpio_line_get(&l, &v), HAL_OK);
    assert_int_equal(v, 0);
    EXPECT_LOG("get_value 0/17 offset=17");
    /* No edges on an output: nothing reaches libgpiod. */
    struct hal_gpio_edge e;
    int fd;
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_ESTATE);
    assert_int_equal(hal_gpio_line_fd(&l, &fd), HAL_ESTATE);
    assert_int_equal(log_n, 0);
    hal_gpio_line_release(&l);
    EXPECT_LOG("request_release 0/17");
    expect_live(0, 0, 0);
    assert_false(lines[0][17].requested);
    /* A second release is a no-op. */
    hal_gpio_line_release(&l);
    assert_int_equal(log_n, 0);
}

static void button_input_by_offset_with_edges(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    struct hal_gpio_request r = hal_button_line_request("/dev/gpiochip0", "27");
    r.consumer = NULL;      /* default consumer name */
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_OK);
    assert_int_equal(l.offset, 27);
    EXPECT_LOG("chip_open /dev/gpiochip0",
               "settings_new", "line_config_new", "request_config_new",
               "set_direction input", "set_edge_detection both",
               "set_bias pull-up", "set_active_low 1",
               "add_line_settings 27 n=1",
               "set_consumer kvmesh",
               "buffer_new 1",
               "request_lines 0 consumer=kvmesh offsets=27 n=1 dir=input value=inactive "
               "edge=both bias=pull-up active_low=1",
               "request_config_free", "line_config_free", "settings_free",
               "chip_close 0");
    expect_live(0, 1, 1);    /* the request and its edge buffer */

    /* No edge pending: a zero-timeout wait, nothing read. */
    struct hal_gpio_edge e;
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_EAGAIN);
    EXPECT_LOG("wait_edge_events 0/27 0ns");
    edge.pending = 1;
    edge.type = GPIOD_EDGE_EVENT_FALLING_EDGE;
    edge.ts_ns = 12000000345ull;
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_OK);
    assert_int_equal(e.type, HAL_GPIO_EDGE_FALLING);
    assert_int_equal(e.ts_ns, 12000000345ull);
    EXPECT_LOG("wait_edge_events 0/27 0ns", "read_edge_events 0/27 max=1",
               "buffer_get_event 0", "event_type 27", "event_timestamp 27");
    edge.pending = 1;
    edge.type = GPIOD_EDGE_EVENT_RISING_EDGE;
    edge.ts_ns = 13000000000ull;
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_OK);
    assert_int_equal(e.type, HAL_GPIO_EDGE_RISING);
    assert_int_equal(e.ts_ns, 13000000000ull);
    log_n = 0;
    /* Failures: the wait, the read, and a read level. */
    fail_wait = 1;
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_EIO);
    EXPECT_LOG("wait_edge_events 0/27 0ns");
    edge.pending = 1;
    fail_read = 1;
    assert_int_equal(hal_gpio_line_read_edge(&l, &e), HAL_EIO);
    EXPECT_LOG("wait_edge_events 0/27 0ns", "read_edge_events 0/27 max=1");
    edge.pending = 0;
    int v = -1;
    fail_get = 1;
    assert_int_equal(hal_gpio_line_get(&l, &v), HAL_EIO);
    assert_int_equal(v, -1);                /* untouched on error */
    EXPECT_LOG("get_value 0/27 offset=27");
    int fd;
    assert_int_equal(hal_gpio_line_fd(&l, &fd), HAL_OK);
    assert_int_equal(fd, 42);
    EXPECT_LOG("request_fd 0/27");

    /* The button drains edges, then samples the level. */
    struct hal_button b;
    struct hal_button_event ev;
    assert_int_equal(hal_button_init(&b, &l, HAL_BUTTON_ROLE_TOGGLE_MODE, 30, 0), HAL_OK);
    EXPECT_LOG("get_value 0/27 offset=27", "wait_edge_events 0/27 0ns");
    /* Pressed at 10 (logical 1: active low, pin pulled to ground). */
    edge.pending = 1;
    edge.type = GPIOD_EDGE_EVENT_RISING_EDGE;
    lines[0][27].value = GPIOD_LINE_VALUE_ACTIVE;
    assert_int_equal(hal_button_poll(&b, 10, &ev), HAL_EAGAIN);
    EXPECT_LOG("wait_edge_events 0/27 0ns", "read_edge_events 0/27 max=1",
               "buffer_get_event 0", "event_type 27", "event_timestamp 27",
               "wait_edge_events 0/27 0ns", "get_value 0/27 offset=27");
    /* A bounce the kernel saw between polls restarts the debounce window... */
    edge.pending = 1;
    assert_int_equal(hal_button_poll(&b, 35, &ev), HAL_EAGAIN);
    log_n = 0;
    assert_int_equal(hal_button_poll(&b, 60, &ev), HAL_EAGAIN);
    EXPECT_LOG("wait_edge_events 0/27 0ns", "get_value 0/27 offset=27");
    /* ...so the press counts 30 ms after the last movement. */
    assert_int_equal(hal_button_poll(&b, 65, &ev), HAL_OK);
    assert_int_equal(ev.kind, HAL_BUTTON_PRESS);
    assert_int_equal(ev.role, HAL_BUTTON_ROLE_TOGGLE_MODE);
    assert_int_equal(ev.at_ms, 65);
    EXPECT_LOG("wait_edge_events 0/27 0ns", "get_value 0/27 offset=27");
    /* Released at 100, reported once settled. */
    edge.pending = 1;
    edge.type = GPIOD_EDGE_EVENT_FALLING_EDGE;
    lines[0][27].value = GPIOD_LINE_VALUE_INACTIVE;
    assert_int_equal(hal_button_poll(&b, 100, &ev), HAL_EAGAIN);
    assert_int_equal(hal_button_poll(&b, 130, &ev), HAL_OK);
    assert_int_equal(ev.kind, HAL_BUTTON_RELEASE);
    assert_int_equal(ev.held_ms, 65);
    log_n = 0;
    /* An input cannot be driven; nothing reaches libgpiod. */
    assert_int_equal(hal_gpio_line_set(&l, 1), HAL_ESTATE);
    assert_int_equal(log_n, 0);
    hal_gpio_line_release(&l);
    EXPECT_LOG("request_release 0/27", "buffer_free");
    expect_live(0, 0, 0);
}

static void input_without_edges_has_no_buffer(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    struct hal_gpio_request r = hal_button_line_request("gpiochip0", "GPIO4");
    r.edges = false;
    r.active_low = false;
    r.bias = HAL_GPIO_BIAS_PULL_DOWN;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_OK);
    EXPECT_LOG("chip_open /dev/gpiochip0", "offset_from_name 0 GPIO4",
               "settings_new", "line_config_new", "request_config_new",
               "set_direction input", "set_bias pull-down", "set_active_low 0",
               "add_line_settings 4 n=1", "set_consumer kvmesh-button",
               "request_lines 0 consumer=kvmesh-button offsets=4 n=1 dir=input "
               "value=inactive edge=none bias=pull-down active_low=0",
               "request_config_free", "line_config_free", "settings_free", "chip_close 0");
    expect_live(0, 1, 0);
    /* The button works from level samples alone. */
    struct hal_button b;
    struct hal_button_event ev;
    assert_int_equal(hal_button_init(&b, &l, HAL_BUTTON_ROLE_RUN_PROMPT, 0, 0), HAL_OK);
    EXPECT_LOG("get_value 0/4 offset=4");
    lines[0][4].value = GPIOD_LINE_VALUE_ACTIVE;
    assert_int_equal(hal_button_poll(&b, 5, &ev), HAL_EAGAIN);
    assert_int_equal(hal_button_poll(&b, 35, &ev), HAL_OK);
    assert_int_equal(ev.kind, HAL_BUTTON_PRESS);
    assert_int_equal(ev.role, HAL_BUTTON_ROLE_RUN_PROMPT);
    EXPECT_LOG("get_value 0/4 offset=4", "get_value 0/4 offset=4");
    hal_gpio_line_release(&l);
    EXPECT_LOG("request_release 0/4");
    expect_live(0, 0, 0);
}

static void chip_by_label_scans_and_closes_the_others(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    struct hal_gpio_request r = hal_led_line_request("raspberrypi-exp-gpio", "2");
    r.bias = HAL_GPIO_BIAS_DISABLED;
    r.initial = 1;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_OK);
    EXPECT_LOG("chip_open /dev/gpiochip0", "chip_get_info 0", "info_label 0", "info_free 0",
               "chip_close 0",
               "chip_open /dev/gpiochip1", "chip_get_info 1", "info_label 1", "info_free 1",
               "settings_new", "line_config_new", "request_config_new",
               "set_direction output", "set_output_value active",
               "set_bias disabled", "set_active_low 0",
               "add_line_settings 2 n=1", "set_consumer kvmesh-led",
               "request_lines 1 consumer=kvmesh-led offsets=2 n=1 dir=output value=active "
               "edge=none bias=disabled active_low=0",
               "request_config_free", "line_config_free", "settings_free",
               "chip_close 1");
    assert_int_equal(lines[1][2].value, GPIOD_LINE_VALUE_ACTIVE);   /* initial = 1 */
    expect_live(0, 1, 0);
    hal_gpio_line_release(&l);
    log_n = 0;
    /* A chip whose info cannot be read is not the one; it is closed and the scan goes on. */
    fail_info = 1;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_OK);
    assert_string_equal(log_buf[0], "chip_open /dev/gpiochip0");
    assert_string_equal(log_buf[1], "chip_get_info 0");
    assert_string_equal(log_buf[2], "chip_close 0");
    assert_string_equal(log_buf[3], "chip_open /dev/gpiochip1");
    hal_gpio_line_release(&l);
    log_n = 0;
    expect_live(0, 0, 0);
    /* An unknown label tries every chip number, then gives up cleanly. */
    r.chip = "pinctrl-rp1";
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_ENODEV);
    assert_int_equal(log_n, 2 * 5 + (32 - 2));  /* open/info/label/free/close twice, 30 failed opens */
    assert_string_equal(log_buf[log_n - 1], "chip_open /dev/gpiochip31");
    log_n = 0;
    /* A chip that cannot be opened for lack of permission (a user outside the gpio
     * group) turns a failed search into a refusal, not "no such chip". */
    fail_open_errno = EACCES;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EIO);
    log_n = 0;
    expect_live(0, 0, 0);
}

static void failures_map_to_statuses_and_close_the_chip(void **state)
{
    (void)state;
    struct hal_gpio_line l, other;
    struct hal_gpio_request r = hal_led_line_request("gpiochip0", "GPIO17");
    /* Another holder has the line: the kernel says EBUSY. */
    assert_int_equal(hal_gpio_line_request(&other, &hal_gpio_linux_ops, NULL, &r), HAL_OK);
    log_n = 0;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EBUSY);
    assert_false(l.requested);
    EXPECT_LOG("chip_open /dev/gpiochip0", "offset_from_name 0 GPIO17",
               "settings_new", "line_config_new", "request_config_new",
               "set_direction output", "set_output_value inactive",
               "set_bias as-is", "set_active_low 0",
               "add_line_settings 17 n=1", "set_consumer kvmesh-led",
               "request_lines 0 consumer=kvmesh-led offsets=17 n=1 dir=output value=inactive "
               "edge=none bias=as-is active_low=0",
               "request_config_free", "line_config_free", "settings_free", "chip_close 0");
    expect_live(0, 1, 0);           /* only the first holder's request */
    assert_string_equal(hal_strerror(HAL_EBUSY), "GPIO line already in use");
    hal_gpio_line_release(&other);
    log_n = 0;
    /* Any other refusal is an I/O error. */
    fail_request_errno = EPERM;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EIO);
    log_n = 0;
    expect_live(0, 0, 0);
    /* No such line name on the chip: nothing is allocated before the name resolves. */
    r.line = "GPIO99";
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_ENODEV);
    EXPECT_LOG("chip_open /dev/gpiochip0", "offset_from_name 0 GPIO99", "chip_close 0");
    /* Past the chip's last line: 2.x has no per-line lookup, so the kernel refuses the
     * request (EINVAL). */
    r.line = "60";
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_ENODEV);
    assert_string_equal(log_buf[log_n - 5],
                        "request_lines 0 consumer=kvmesh-led offsets=60 n=1 dir=output "
                        "value=inactive edge=none bias=as-is active_low=0");
    assert_string_equal(log_buf[log_n - 1], "chip_close 0");
    log_n = 0;
    expect_live(0, 0, 0);
    /* No such chip. */
    r.line = "17";
    r.chip = "gpiochip9";
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_ENODEV);
    EXPECT_LOG("chip_open /dev/gpiochip9");
    assert_string_equal(hal_strerror(HAL_ENODEV), "no such GPIO chip or line");
    /* Not in the gpio group. */
    fail_open_errno = EACCES;
    r.chip = "gpiochip0";
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EIO);
    EXPECT_LOG("chip_open /dev/gpiochip0");
    /* Edges on an output are refused before libgpiod is called. */
    r.edges = true;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EINVAL);
    assert_int_equal(log_n, 0);
    expect_live(0, 0, 0);
}

/* 2.x only: every object made for a request is freed when a later step fails. */
static void allocation_failures_free_what_was_made(void **state)
{
    (void)state;
    struct hal_gpio_line l;
    struct hal_gpio_request r = hal_button_line_request("gpiochip0", "27");

    fail_new = "settings_new";
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EIO);
    EXPECT_LOG("chip_open /dev/gpiochip0", "settings_new", "line_config_new",
               "request_config_new", "request_config_free", "line_config_free",
               "chip_close 0");
    expect_live(0, 0, 0);

    fail_new = "request_config_new";
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EIO);
    EXPECT_LOG("chip_open /dev/gpiochip0", "settings_new", "line_config_new",
               "request_config_new", "line_config_free", "settings_free", "chip_close 0");
    expect_live(0, 0, 0);

    fail_set_edge = 1;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EIO);
    EXPECT_LOG("chip_open /dev/gpiochip0", "settings_new", "line_config_new",
               "request_config_new", "set_direction input", "set_edge_detection both",
               "request_config_free", "line_config_free", "settings_free", "chip_close 0");
    expect_live(0, 0, 0);

    fail_new = "buffer_new";
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EIO);
    assert_string_equal(log_buf[log_n - 5], "buffer_new 1");
    assert_string_equal(log_buf[log_n - 4], "request_config_free");
    log_n = 0;
    expect_live(0, 0, 0);

    /* The kernel refuses after the edge buffer was made: it is freed too. */
    fail_request_errno = EBUSY;
    assert_int_equal(hal_gpio_line_request(&l, &hal_gpio_linux_ops, NULL, &r), HAL_EBUSY);
    assert_string_equal(log_buf[log_n - 7], "buffer_new 1");
    assert_string_equal(log_buf[log_n - 5], "buffer_free");
    log_n = 0;
    expect_live(0, 0, 0);
    assert_false(lines[0][27].requested);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(built_against_2x),
        cmocka_unit_test_setup(led_output_by_name, reset),
        cmocka_unit_test_setup(button_input_by_offset_with_edges, reset),
        cmocka_unit_test_setup(input_without_edges_has_no_buffer, reset),
        cmocka_unit_test_setup(chip_by_label_scans_and_closes_the_others, reset),
        cmocka_unit_test_setup(failures_map_to_statuses_and_close_the_chip, reset),
        cmocka_unit_test_setup(allocation_failures_free_what_was_made, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
