/* Native stack of the thread that crashes, for the GPU bench (no gdb on the device).
 *
 * Loaded with LD_PRELOAD by bench/gpu/device_run.sh (CRASH_TRACE=1), compiled there with the
 * C compiler that OpenAI Triton needs anyway. Its constructor installs a handler for SIGSEGV,
 * SIGBUS, SIGILL and SIGFPE on an alternate stack. Python's faulthandler, enabled later,
 * takes the signals over, prints the Python threads, restores this handler and raises the
 * signal again in the same thread: this handler then prints that thread's name and its
 * native frames (library + offset, which names the library that faulted), and ends the
 * process without a core dump (a CUDA process's core can take minutes to write).
 */
#define _GNU_SOURCE
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static void on_fault(int sig, siginfo_t *info, void *context) {
  (void)context;
  char name[32] = {0};
  char line[160];
  prctl(PR_GET_NAME, name, 0, 0, 0);
  int n = snprintf(line, sizeof line,
                   "\n=== crash_trace: signal %d at address %p in thread %ld \"%s\" ===\n", sig,
                   info ? info->si_addr : NULL, (long)gettid(), name);
  if (n > 0 && write(2, line, (size_t)n) < 0) _exit(128 + sig);
  void *frames[64];
  int count = backtrace(frames, 64);
  backtrace_symbols_fd(frames, count, 2);
  static const char end[] = "=== crash_trace: end ===\n";
  if (write(2, end, sizeof end - 1) < 0) _exit(128 + sig);
  _exit(128 + sig);
}

__attribute__((constructor)) static void install(void) {
  static char stack[1 << 16];
  stack_t alt = {.ss_sp = stack, .ss_size = sizeof stack, .ss_flags = 0};
  sigaltstack(&alt, NULL);
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = on_fault;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  int signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
  for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++)
    sigaction(signals[i], &action, NULL);
}
