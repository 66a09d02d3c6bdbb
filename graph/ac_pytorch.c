#define _GNU_SOURCE
#include "ac_pytorch.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ac_file.h"

extern char **environ;

#ifndef AC_PYTHON_DIR_DEFAULT
#define AC_PYTHON_DIR_DEFAULT "python"
#endif

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

bool ac_pytorch_is_model(const char *path)
{
    if (has_suffix(path, ".pt") || has_suffix(path, ".pth") || has_suffix(path, ".torchscript"))
        return true;
    const char *colon = strrchr(path, ':');
    return colon && colon - path >= 3 && strncasecmp(colon - 3, ".py", 3) == 0 && colon[1];
}

/* The last non-empty line of the child's stderr: the helper writes its
 * reason there as one line; torch's warnings come before it. */
static void last_line(char *text, char *out, size_t cap)
{
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = 0;
    char *nl = strrchr(text, '\n');
    snprintf(out, cap, "%s", nl ? nl + 1 : text);
}

int ac_pytorch_export(const char *model, const char *weights, const char *input_shapes,
                      const char *out_onnx, ac_err *err)
{
    if (!input_shapes || !*input_shapes)
        return ac_err_set(err, AC_E_INVALID,
                          "%s: a PyTorch model records no input shape: give --input_data_shape", model);
    const char *python = getenv("AC_PYTHON");
    const char *dir = getenv("AC_PYTHON_DIR");
    char script[4096];
    snprintf(script, sizeof script, "%s/export_pytorch.py", dir && *dir ? dir : AC_PYTHON_DIR_DEFAULT);
    if (access(script, R_OK))
        return ac_err_set(err, AC_E_IO, "%s: the PyTorch export helper is missing (set AC_PYTHON_DIR to "
                          "the folder holding export_pytorch.py)", script);
    if (!python || !*python)
        python = "python3";
    char *argv[12];
    int a = 0;
    argv[a++] = (char *)python;
    argv[a++] = script;
    argv[a++] = (char *)model;
    argv[a++] = "--input_shape";
    argv[a++] = (char *)input_shapes;
    argv[a++] = "--output";
    argv[a++] = (char *)out_onnx;
    if (weights) {
        argv[a++] = "--weights";
        argv[a++] = (char *)weights;
    }
    argv[a] = NULL;

    int fds[2];
    if (pipe(fds))
        return ac_err_set(err, AC_E_IO, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    pid_t pid;
    int rc = posix_spawnp(&pid, python, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc) {
        close(fds[0]);
        return ac_err_set(err, AC_E_IO, "%s: cannot start the Python interpreter '%s' (set AC_PYTHON): %s",
                          model, python, strerror(rc));
    }
    /* Keep only the tail of stderr: the reason is on the last line. */
    char tail[8192];
    size_t used = 0;
    ssize_t got;
    char chunk[4096];
    while ((got = read(fds[0], chunk, sizeof chunk)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (used + (size_t)got >= sizeof tail) {
            size_t keep = sizeof tail / 2 > (size_t)got ? sizeof tail / 2 : 0;
            keep = keep > used ? used : keep;
            memmove(tail, tail + used - keep, keep);
            used = keep;
        }
        size_t take = (size_t)got < sizeof tail - 1 - used ? (size_t)got : sizeof tail - 1 - used;
        memcpy(tail + used, chunk + (size_t)got - take, take);
        used += take;
    }
    tail[used] = 0;
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    char why[1024];
    last_line(tail, why, sizeof why);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return ac_err_set(err, AC_E_IO, "%s: cannot run '%s' (set AC_PYTHON to an interpreter with torch)",
                          model, python);
    return ac_err_set(err, WIFEXITED(status) && WEXITSTATUS(status) == 3 ? AC_E_UNSUPPORTED : AC_E_INVALID,
                      "%s: PyTorch export failed (%s %s): %s", model, python, script,
                      *why ? why : "no message");
}

int ac_pytorch_export_buffer(const char *model, const char *weights, const char *input_shapes,
                             char **buf, size_t *len, ac_err *err)
{
    *buf = NULL;
    *len = 0;
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/autocalib-torch-XXXXXX.onnx", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemps(path, 5);
    if (fd < 0)
        return ac_err_set(err, AC_E_IO, "%s: cannot make a temporary file: %s", path, strerror(errno));
    close(fd);
    int rc = ac_pytorch_export(model, weights, input_shapes, path, err);
    if (!rc)
        rc = ac_model_file_read(path, (size_t)2 << 30, "ONNX", buf, len, err);
    unlink(path);
    return rc;
}
