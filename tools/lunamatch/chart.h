/*
 * chart.h - the PNG bar chart of `lunamatch audit`: one horizontal bar per
 * category, its length the impact ratio (0..1), coloured by verdict, with a
 * vertical line at the four-fifths threshold. The chart carries no text: the
 * Markdown report lists the categories in the same order, top to bottom.
 */
#ifndef LUNAMATCH_CLI_CHART_H
#define LUNAMATCH_CLI_CHART_H

#include <stddef.h>

/* Most bars in one chart; further bars are left out. */
#define LM_CHART_BARS_MAX 512

typedef enum lm_chart_kind {
	LM_CHART_PASS,     /* green */
	LM_CHART_FLAGGED,  /* red */
	LM_CHART_EXCLUDED, /* grey, drawn at full length as a placeholder */
	LM_CHART_GAP,      /* an empty row between groups of bars */
} lm_chart_kind;

typedef struct lm_chart_bar {
	double value; /* clamped to 0..1 */
	lm_chart_kind kind;
} lm_chart_bar;

/* Chart geometry, in pixels. */
#define LM_CHART_WIDTH  640
#define LM_CHART_MARGIN 16
#define LM_CHART_ROW    22 /* a bar of LM_CHART_BAR and its gap */
#define LM_CHART_BAR    16

/*
 * Draws bars[0..n) with the threshold line at threshold (0..1) and writes
 * the chart to path as an 8-bit RGB PNG (libpng). Returns LM_OK, or an
 * lm_err after writing the reason into err.
 */
int lm_chart_write(const char *path, const lm_chart_bar *bars, size_t n, double threshold,
    char *err, size_t errlen);

#endif /* LUNAMATCH_CLI_CHART_H */
