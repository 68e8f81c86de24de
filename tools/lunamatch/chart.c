/*
 * chart.c - draws the bar chart of `lunamatch audit` into an RGB buffer and
 * writes it as a PNG with libpng (see chart.h).
 */
#include <errno.h>
#include <png.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chart.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"

/* Text: the 5x7 glyphs are drawn SCALE times larger. */
#define SCALE   2
#define GLYPH_W 5
#define GLYPH_H 7
#define ADVANCE ((GLYPH_W + 1) * SCALE)

/* One glyph: 7 rows top to bottom, 5 bits each, the high bit leftmost. */
struct glyph {
	char c;
	uint8_t rows[GLYPH_H];
};

static const struct glyph FONT[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}},
    {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
    {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
    {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
    {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}},
    {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}},
    {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {' ', {0, 0, 0, 0, 0, 0, 0}},
    {'.', {0, 0, 0, 0, 0, 0x0C, 0x0C}},
    {',', {0, 0, 0, 0, 0x0C, 0x04, 0x08}},
    {':', {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}},
    {'-', {0, 0, 0, 0x1F, 0, 0, 0}},
    {'+', {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0}},
    {'_', {0, 0, 0, 0, 0, 0, 0x1F}},
    {'/', {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0}},
    {'&', {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}},
    {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04}},
};

struct canvas {
	uint8_t *px;
	unsigned w, h;
};

static void
fill(struct canvas *cv, unsigned x0, unsigned y0, unsigned x1, unsigned y1, uint32_t rgb)
{
	const uint8_t c[3] = {(uint8_t) (rgb >> 16), (uint8_t) (rgb >> 8), (uint8_t) rgb};

	if (x1 > cv->w)
		x1 = cv->w;
	if (y1 > cv->h)
		y1 = cv->h;
	for (unsigned y = y0; y < y1; y++)
		for (unsigned x = x0; x < x1; x++)
			memcpy(cv->px + ((size_t) y * cv->w + x) * 3, c, 3);
}

static const struct glyph *
glyph(char c)
{
	if (c >= 'a' && c <= 'z')
		c = (char) (c - 'a' + 'A');
	for (size_t i = 0; i < sizeof(FONT) / sizeof(FONT[0]); i++)
		if (FONT[i].c == c)
			return &FONT[i];
	return glyph('?');
}

/* Draws at most max characters of s with its top left corner at x, y. A
 * UTF-8 sequence is drawn as one '?'. */
static void
text(struct canvas *cv, unsigned x, unsigned y, const char *s, size_t max)
{
	for (size_t n = 0; *s != '\0' && n < max; n++, x += ADVANCE) {
		const struct glyph *g = glyph((unsigned char) *s < 0x80 ? *s : '?');
		if ((unsigned char) *s++ >= 0xC0)
			while (((unsigned char) *s & 0xC0) == 0x80)
				s++;
		for (unsigned r = 0; r < GLYPH_H; r++)
			for (unsigned b = 0; b < GLYPH_W; b++)
				if (g->rows[r] & (0x10 >> b))
					fill(cv, x + b * SCALE, y + r * SCALE,
					    x + (b + 1) * SCALE, y + (r + 1) * SCALE,
					    LM_CHART_RGB_TEXT);
	}
}

/* Writes the rows of cv with libpng; a separate function so that nothing
 * the caller owns lives across libpng's longjmp. */
static int
write_png(FILE *f, const struct canvas *cv, char *err, size_t errlen)
{
	png_structp png =
	    png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = NULL;

	if (png == NULL || (info = png_create_info_struct(png)) == NULL) {
		png_destroy_write_struct(&png, NULL);
		snprintf(err, errlen, "out of memory");
		return LM_ENOMEM;
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		snprintf(err, errlen, "cannot encode the PNG");
		return LM_EIO;
	}
	png_init_io(png, f);
	png_set_IHDR(png, info, cv->w, cv->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
	    PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (unsigned y = 0; y < cv->h; y++)
		png_write_row(png, cv->px + (size_t) y * cv->w * 3);
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	return LM_OK;
}

int
lm_chart_write(const char *path, const lm_chart_row *rows, size_t n, double threshold,
    char *err, size_t errlen)
{
	const unsigned m = LM_CHART_MARGIN, x0 = LM_CHART_BAR_X, span = LM_CHART_BAR_SPAN;
	const unsigned pad = (LM_CHART_ROW - GLYPH_H * SCALE) / 2;
	struct canvas cv = {NULL, LM_CHART_WIDTH, 0};
	char num[16];
	FILE *f;
	int rc;

	if (n > LM_CHART_ROWS_MAX)
		n = LM_CHART_ROWS_MAX;
	cv.h = 2 * m + (unsigned) (n ? n : 1) * LM_CHART_ROW;
	if ((cv.px = malloc((size_t) cv.w * cv.h * 3)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return LM_ENOMEM;
	}
	fill(&cv, 0, 0, cv.w, cv.h, 0xffffff);
	for (size_t i = 0; i < n; i++) {
		const lm_chart_row *r = &rows[i];
		unsigned y = m + (unsigned) i * LM_CHART_ROW;
		bool full = r->kind == LM_CHART_EXCLUDED || r->kind == LM_CHART_UNDEFINED;
		double v = full ? 1.0 : r->value;
		v = v < 0 ? 0 : v > 1 ? 1 : v;
		if (r->label != NULL)
			text(&cv, r->kind == LM_CHART_TITLE ? 4 : m, y + pad, r->label,
			    LM_CHART_LABEL_CHARS + (r->kind == LM_CHART_TITLE ? 2 : 0));
		if (r->kind == LM_CHART_TITLE)
			continue;
		unsigned len = (unsigned) (v * span + 0.5);
		uint32_t rgb = r->kind == LM_CHART_PASS      ? LM_CHART_RGB_PASS
		               : r->kind == LM_CHART_FLAGGED ? LM_CHART_RGB_FLAGGED
		                                             : LM_CHART_RGB_EXCLUDED;
		if (len > 0)
			fill(&cv, x0, y + (LM_CHART_ROW - LM_CHART_BAR) / 2, x0 + len,
			    y + (LM_CHART_ROW + LM_CHART_BAR) / 2, rgb);
		if (r->kind == LM_CHART_UNDEFINED) {
			text(&cv, x0 + span + 8, y + pad, "N/A", 5);
		} else if (r->kind != LM_CHART_EXCLUDED) {
			snprintf(num, sizeof(num), "%.3f", r->value);
			text(&cv, x0 + span + 8, y + pad, num, 5);
		}
	}
	/* The axis at 0 and the threshold line. */
	fill(&cv, x0 - 2, m - 4, x0, cv.h - m + 4, LM_CHART_RGB_TEXT);
	if (threshold > 0 && threshold <= 1) {
		unsigned x = x0 + (unsigned) (threshold * span + 0.5);
		fill(&cv, x - 1, m - 4, x + 1, cv.h - m + 4, LM_CHART_RGB_THRESHOLD);
	}
	if ((f = fopen(path, "wb")) == NULL) {
		int e = errno;
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(e));
		free(cv.px);
		return lm_err_from_errno(e);
	}
	rc = write_png(f, &cv, err, errlen);
	if (fclose(f) != 0 && rc == LM_OK) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		rc = LM_EIO;
	}
	free(cv.px);
	return rc;
}
