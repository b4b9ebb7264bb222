/* insncount: a QEMU TCG plugin that counts the guest instructions executed, for bench/pi3_cost.py.
 *
 *   qemu-aarch64 -cpu cortex-a53 -plugin .bench/pi3/insncount.so,out=FILE PROGRAM...
 *
 * FILE gets one line per marker, "mark ID THREAD TOTAL" (the calling thread's count and all
 * threads' at that point), and "total N" at exit. A guest sets a marker with the otherwise unused
 * syscall MARK_SYSCALL (arg 1 = ID, e.g. ctypes: libc.syscall(0x4d43, 7)); qemu answers it with
 * ENOSYS, the plugin sees it first. Counts are per vCPU (= per guest thread in qemu-user), so no
 * thread's add is lost to another's: a TB callback, not the inline add, because API version 1
 * (QEMU 4.2-8.0, Debian bookworm's 7.2) has only a single shared inline counter.
 * The few API declarations are written out here (the API is a stable C ABI) because Debian ships
 * no qemu-plugin.h. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct { const char *target_name; struct { int min, cur; } version; } qemu_info_t;  /* prefix only */
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, void (*)(unsigned int, void *),
                                          enum qemu_plugin_cb_flags, void *);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, unsigned int, int64_t,
    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t));
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, void *), void *);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;

#define MARK_SYSCALL 0x4d43
#define SLOTS 256                                /* guest threads alive at once; more share the last */
static struct { uint64_t n; char pad[56]; } count[SLOTS];   /* a cache line each: no false sharing */
static FILE *out;

static uint64_t total(void) {
    uint64_t sum = 0;
    for (int i = 0; i < SLOTS; i++) sum += __atomic_load_n(&count[i].n, __ATOMIC_RELAXED);
    return sum;
}
static void on_exec(unsigned int vcpu, void *n_insns) {
    __atomic_fetch_add(&count[vcpu < SLOTS ? vcpu : SLOTS - 1].n, (uint64_t)(uintptr_t)n_insns, __ATOMIC_RELAXED);
}
static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, (void *)(uintptr_t)qemu_plugin_tb_n_insns(tb));
}
static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                       uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8) {
    if (num != MARK_SYSCALL) return;
    fprintf(out, "mark %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", a1, count[vcpu < SLOTS ? vcpu : SLOTS - 1].n, total());
    fflush(out);
}
static void on_exit(qemu_plugin_id_t id, void *p) {
    fprintf(out, "total %" PRIu64 "\n", total());
    fflush(out);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    out = stderr;
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "out=", 4) == 0 && !(out = fopen(argv[i] + 4, "w"))) return -1;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
