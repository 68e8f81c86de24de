/*
 * chart.c - draws the bar chart of `lunamatch audit` into an RGB buffer and
 * writes it as a PNG with libpng (see chart.h).
 */
#include <errno.h>
#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chart.h"
#include "lunamatch/error.h"

static const uint8_t WHITE[3] = {255, 255, 255};
static const uint8_t AXIS[3] = {64, 64, 64};
static const uint8_t COLOR[][3] = {
    [LM_CHART_PASS] = {46, 139, 87},
    [LM_CHART_FLAGGED] = {200, 40, 40},
    [LM_CHART_EXCLUDED] = {190, 190, 190},
    [LM_CHART_GAP] = {255, 255, 255},
};
static const uint8_t THRESHOLD[3] = {30, 30, 160};

static void
fill(uint8_t *img, unsigned w, unsigned x0, unsigned y0, unsigned x1, unsigned y1,
    const uint8_t c[3])
{
	for (unsigned y = y0; y < y1; y++)
		for (unsigned x = x0; x < x1; x++)
			memcpy(img + ((size_t) y * w + x) * 3, c, 3);
}

/* Writes the rows of img with libpng; a separate function so that nothing
 * the caller owns lives across libpng's longjmp. */
static int
write_png(FILE *f, const uint8_t *img, unsigned w, unsigned h, char *err, size_t errlen)
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
	png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
	    PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (unsigned y = 0; y < h; y++)
		png_write_row(png, img + (size_t) y * w * 3);
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	return LM_OK;
}

int
lm_chart_write(const char *path, const lm_chart_bar *bars, size_t n, double threshold,
    char *err, size_t errlen)
{
	const unsigned w = LM_CHART_WIDTH, m = LM_CHART_MARGIN;
	const unsigned span = w - 2 * m;
	unsigned h;
	uint8_t *img;
	FILE *f;
	int rc;

	if (n > LM_CHART_BARS_MAX)
		n = LM_CHART_BARS_MAX;
	h = 2 * m + (unsigned) (n ? n : 1) * LM_CHART_ROW;
	if ((img = malloc((size_t) w * h * 3)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return LM_ENOMEM;
	}
	fill(img, w, 0, 0, w, h, WHITE);
	for (size_t i = 0; i < n; i++) {
		double v = bars[i].value;
		if (bars[i].kind == LM_CHART_EXCLUDED)
			v = 1.0;
		v = v < 0 ? 0 : v > 1 ? 1 : v;
		unsigned y = m + (unsigned) i * LM_CHART_ROW;
		unsigned len = (unsigned) (v * span + 0.5);
		if (bars[i].kind != LM_CHART_GAP && len > 0)
			fill(
			    img, w, m, y, m + len, y + LM_CHART_BAR, COLOR[bars[i].kind]);
	}
	/* The axis at 0 and the threshold line. */
	fill(img, w, m - 2, m - 4, m, h - m + 4, AXIS);
	if (threshold > 0 && threshold <= 1) {
		unsigned x = m + (unsigned) (threshold * span + 0.5);
		fill(img, w, x - 1, m - 4, x + 1, h - m + 4, THRESHOLD);
	}
	if ((f = fopen(path, "wb")) == NULL) {
		int e = errno;
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(e));
		free(img);
		return lm_err_from_errno(e);
	}
	rc = write_png(f, img, w, h, err, errlen);
	if (fclose(f) != 0 && rc == LM_OK) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		rc = LM_EIO;
	}
	free(img);
	return rc;
}
