#include "ac_progress.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define BAR_CELLS 24
#define REDRAW_S 0.1

struct ac_progress {
    FILE *f;
    bool bar;
    double t0, start, last;   /* job start, phase start, last draw or line */
    int64_t total, done;
    char what[160], unit[24];
    int cols;                 /* terminal width */
    int drawn;                /* length of the line on screen */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int terminal_cols(FILE *f)
{
    struct winsize ws;
    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

ac_progress *ac_progress_new(FILE *f, ac_progress_style style, double t0, const char *what, int64_t total,
                             const char *unit)
{
    if (!f || total <= 0)
        return NULL;
    ac_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->f = f;
    p->bar = style == AC_PROGRESS_BAR || (style == AC_PROGRESS_AUTO && isatty(fileno(f)));
    p->t0 = t0;
    p->start = p->last = now();
    p->total = total;
    snprintf(p->what, sizeof p->what, "%s", what);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->cols = p->bar ? terminal_cols(f) : 0;
    if (p->bar) {
        ac_progress_update(p, 0);
    } else {
        fprintf(f, "[%7.2fs] %s: %lld %s\n", p->start - t0, p->what, (long long)total, p->unit);
        fflush(f);
    }
    return p;
}

/* "4s", "2m05s", "1h07m". */
static void duration(char *buf, size_t n, double s)
{
    long v = (long)(s + 0.5);
    if (v < 60)
        snprintf(buf, n, "%lds", v);
    else if (v < 3600)
        snprintf(buf, n, "%ldm%02lds", v / 60, v % 60);
    else
        snprintf(buf, n, "%ldh%02ldm", v / 3600, v % 3600 / 60);
}

/* "  12/48 tasks  4.1/s  ETA 9s" (or "  in 3.2s" when the phase has ended). */
static void counts(const ac_progress *p, double t, bool ended, char *buf, size_t n)
{
    double el = t - p->start, rate = el > 0 && p->done > 0 ? (double)p->done / el : 0;
    int len = snprintf(buf, n, "  %lld/%lld %s", (long long)p->done, (long long)p->total, p->unit);
    if (rate > 0)
        len += snprintf(buf + len, n - (size_t)len, rate < 100 ? "  %.1f/s" : "  %.0f/s", rate);
    char d[32];
    if (ended) {
        snprintf(buf + len, n - (size_t)len, "  in %.1fs", el);
    } else if (rate > 0 && p->done < p->total) {
        duration(d, sizeof d, (double)(p->total - p->done) / rate);
        snprintf(buf + len, n - (size_t)len, "  ETA %s", d);
    }
}

/* Redraws the bar line, fitted to the terminal's width so that it never wraps. */
static void draw(ac_progress *p, double t, bool ended)
{
    char tail[128], bar[BAR_CELLS + 4], stamp[32], line[512];
    counts(p, t, ended, tail, sizeof tail);
    int sl = snprintf(stamp, sizeof stamp, "[%7.2fs] ", t - p->t0);
    int cells = (int)(BAR_CELLS * p->done / p->total);
    bar[0] = ' ';
    bar[1] = '[';
    for (int i = 0; i < BAR_CELLS; i++)
        bar[2 + i] = i < cells ? '#' : '-';
    bar[BAR_CELLS + 2] = ']';
    bar[BAR_CELLS + 3] = '\0';
    int room = p->cols - 1 - sl - (int)strlen(tail);
    if (room - (int)strlen(bar) < 8)
        bar[0] = '\0';                                 /* a narrow terminal: no bar */
    room -= (int)strlen(bar);
    int wl = (int)strlen(p->what);
    if (room < 4)
        room = 4;
    int len = snprintf(line, sizeof line, "\r%s%.*s%s%s%s", stamp, wl > room ? room - 3 : wl, p->what,
                       wl > room ? "..." : "", bar, tail);
    len = len < (int)sizeof line ? len : (int)sizeof line - 1;
    fputs(line, p->f);
    for (int i = len - 1; i < p->drawn; i++)
        fputc(' ', p->f);                              /* clear what a longer line left */
    p->drawn = len - 1;
    p->last = t;
    fflush(p->f);
}

void ac_progress_update(ac_progress *p, int64_t done)
{
    if (!p)
        return;
    p->done = done < 0 ? 0 : done > p->total ? p->total : done;
    double t = now();
    if (p->bar) {
        if (t - p->last >= REDRAW_S || p->done == p->total || p->drawn == 0)
            draw(p, t, false);
    } else if (t - p->last >= AC_PROGRESS_LINE_S) {
        char tail[128];
        counts(p, t, false, tail, sizeof tail);
        fprintf(p->f, "[%7.2fs] %s: %s\n", t - p->t0, p->what, tail + 2);
        fflush(p->f);
        p->last = t;
    }
}

void ac_progress_destroy(ac_progress **pp)
{
    ac_progress *p = pp ? *pp : NULL;
    if (!p)
        return;
    double t = now();
    if (p->bar) {
        draw(p, t, true);
        fputc('\n', p->f);
    } else {
        char tail[128];
        counts(p, t, true, tail, sizeof tail);
        fprintf(p->f, "[%7.2fs] %s: %s\n", t - p->t0, p->what, tail + 2);
    }
    fflush(p->f);
    free(p);
    *pp = NULL;
}
