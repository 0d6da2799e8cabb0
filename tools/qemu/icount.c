/*
 * A qemu TCG plugin that counts the guest instructions executed, per translation block:
 * at exit it writes "vaddr count" lines (hex address, decimal count) to out=PATH.
 * tools/qemu/profile.sh builds it and turns the counts into a profile by function.
 *
 * Plugin API version 1 (qemu 7.2, Debian 12's qemu-user). The few declarations it needs
 * are written out here, as qemu-plugin.h is not packaged. Counters are updated
 * atomically, so multi-threaded guests count right (slower).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct {
    const char *target_name;
    struct {
        int min, cur;
    } version;
    _Bool system_emulation;
} qemu_info_t;
struct qemu_plugin_tb;
typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*vcpu_udata_cb)(unsigned int vcpu, void *userdata);
typedef void (*udata_cb)(qemu_plugin_id_t id, void *userdata);
enum { QEMU_PLUGIN_CB_NO_REGS = 0 };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, vcpu_udata_cb cb, int flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* One block as translated: its start, its length in instructions, its executions x
 * length. A block translated again (after a flush) gets a new entry with the same
 * address; profile.sh sums them by function. */
typedef struct {
    uint64_t vaddr, n_insns, count;
} block;

/* Blocks live in fixed-size pages that never move, so a running callback's pointer stays
 * valid while another thread translates. In user mode (qemu-aarch64) qemu translates
 * under its mmap lock, one block at a time; system mode is not supported here. */
#define PAGE_BLOCKS 65536
#define MAX_PAGES 4096
static block *pages[MAX_PAGES];
static size_t n_blocks;
static const char *out_path = "icount.txt";

static void on_exec(unsigned int vcpu, void *userdata)
{
    (void)vcpu;
    block *b = userdata;
    __atomic_fetch_add(&b->count, b->n_insns, __ATOMIC_RELAXED);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t p = n_blocks / PAGE_BLOCKS;
    if (p >= MAX_PAGES)
        return; /* past 268M translations: stop counting new blocks */
    if (!pages[p] && !(pages[p] = calloc(PAGE_BLOCKS, sizeof(block))))
        return;
    block *b = &pages[p][n_blocks % PAGE_BLOCKS];
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->n_insns = qemu_plugin_tb_n_insns(tb);
    n_blocks++;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void on_exit_write(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    FILE *f = fopen(out_path, "w");
    if (!f) {
        fprintf(stderr, "icount: cannot write %s\n", out_path);
        return;
    }
    for (size_t i = 0; i < n_blocks; i++) {
        const block *b = &pages[i / PAGE_BLOCKS][i % PAGE_BLOCKS];
        if (b->count)
            fprintf(f, "%llx %llu\n", (unsigned long long)b->vaddr, (unsigned long long)b->count);
    }
    fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "out=", 4) == 0)
            out_path = argv[i] + 4;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit_write, NULL);
    return 0;
}
