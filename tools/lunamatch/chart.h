/*
 * chart.h - the PNG bar chart of `lunamatch audit`: one row per category
 * with its name, a horizontal bar as long as its impact ratio (0..1)
 * coloured by verdict and the ratio as a number, a title row before each
 * table, and a vertical line at the four-fifths threshold. Text is drawn in
 * a built-in 5x7 pixel font (upper-case letters, digits and a few signs;
 * lower case is shown in upper case, anything else as '?').
 */
#ifndef LUNAMATCH_CLI_CHART_H
#define LUNAMATCH_CLI_CHART_H

#include <stddef.h>

/* Most rows in one chart; further rows are left out. */
#define LM_CHART_ROWS_MAX 512

typedef enum lm_chart_kind {
	LM_CHART_PASS,      /* green bar */
	LM_CHART_FLAGGED,   /* red bar */
	LM_CHART_EXCLUDED,  /* grey bar at full length, no number */
	LM_CHART_UNDEFINED, /* grey bar at full length, "N/A" for the number: a
	                       ratio that is undefined (value unused) */
	LM_CHART_TITLE,     /* the label alone, the title of the rows below */
} lm_chart_kind;

typedef struct lm_chart_row {
	const char *label; /* cut to LM_CHART_LABEL_CHARS characters */
	double value;      /* clamped to 0..1; unused by LM_CHART_EXCLUDED and
	                      LM_CHART_UNDEFINED, which may pass NaN */
	lm_chart_kind kind;
} lm_chart_row;

/* Geometry, in pixels. Row i (from 0) spans y = LM_CHART_MARGIN + i *
 * LM_CHART_ROW; its bar starts at LM_CHART_BAR_X and is LM_CHART_BAR_SPAN
 * long at value 1. */
#define LM_CHART_WIDTH       640
#define LM_CHART_MARGIN      16
#define LM_CHART_ROW         22
#define LM_CHART_BAR         16 /* bar height */
#define LM_CHART_BAR_X       268
#define LM_CHART_BAR_SPAN    288
#define LM_CHART_LABEL_CHARS 20

/* The colours (RGB), for readers of the chart such as its test. */
#define LM_CHART_RGB_PASS      0x2e8b57
#define LM_CHART_RGB_FLAGGED   0xc82828
#define LM_CHART_RGB_EXCLUDED  0xbebebe
#define LM_CHART_RGB_THRESHOLD 0x1e1ea0
#define LM_CHART_RGB_TEXT      0x202020

/*
 * Draws rows[0..n) with the threshold line at threshold (0..1) and writes
 * the chart to path as an 8-bit RGB PNG (libpng). Returns LM_OK, or an
 * lm_err after writing the reason into err.
 */
int lm_chart_write(const char *path, const lm_chart_row *rows, size_t n, double threshold,
    char *err, size_t errlen);

#endif /* LUNAMATCH_CLI_CHART_H */
