/*
 * main.c - `lunamatch`, the command-line tool: the command table and the
 * dispatcher.
 *
 *   lunamatch [global options] COMMAND [arguments and options]
 *
 * Global options are those of lm_config for LM_PROG_CLI (--brokers,
 * --data-dir, --json, --url, --topic-*, ...). They may be written before the
 * command name, where lm_config_load reads them (it stops at the first
 * non-option, the command), or anywhere among the command's arguments, where
 * the dispatcher recognizes them while it checks the command's own options
 * (see cli.h for the whole contract). Both sets are then applied by one more
 * lm_config_load over the global flags alone, in the order written, so the
 * last one wins and every value is validated by the one configuration
 * module.
 *
 * Help: `lunamatch --help`, `lunamatch help [COMMAND]`, `lunamatch COMMAND
 * --help` (or -h). Exit statuses: 0 ok, 1 operation failed, 2 usage error,
 * 3 the service or Kafka unavailable.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lunamatch/error.h"
#include "lunamatch/log.h"

/* The commands. Keep the rows in the order --help lists them. */
static const lm_cli_command commands[] = {
    {"produce", lm_cli_produce, "send postings or profiles from a JSON file to Kafka",
        lm_cli_produce_usage, "", lm_cli_produce_options},
    {"store", lm_cli_store, "read records and statistics from the record store",
        lm_cli_store_usage, "", lm_cli_store_options},
    {"dlq", lm_cli_dlq, "show messages that ingest rejected to the dead-letter topic",
        lm_cli_dlq_usage, "n:f", lm_cli_dlq_options},
    {"match", lm_cli_match, "ranked jobs for a candidate or candidates for a job",
        lm_cli_match_usage, "", lm_cli_match_options},
    {"explain", lm_cli_explain,
        "explain one candidate/job pair: why, why not, what would help",
        lm_cli_explain_usage, "", lm_cli_explain_options},
    {"get", lm_cli_get, "show a posting or profile as the match service holds it",
        lm_cli_get_usage, "", lm_cli_get_options},
    {"health", lm_cli_health, "check that the match service is serving",
        lm_cli_health_usage, "", lm_cli_health_options},
    {"bench", lm_cli_bench, "load on the match server, measured against a raw nng echo",
        lm_cli_bench_usage, "", lm_cli_bench_options},
    {"watch", lm_cli_watch, "follow the new-match events on the matches topic",
        lm_cli_watch_usage, "n:", lm_cli_watch_options},
    {"eval", lm_cli_eval, "measure ranking quality on a judged evaluation set",
        lm_cli_eval_usage, "", lm_cli_eval_options},
    {"audit", lm_cli_audit, "selection rates and impact ratios by demographic category",
        lm_cli_audit_usage, "", lm_cli_audit_options},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Most global flags of LM_PROG_CLI (config.c) recognized after the command. */
#define NGLOBAL 64

/* Most options a command table may declare. */
#define CMD_OPTS_MAX 64
/* getopt values of the dispatcher's parse, above every character. */
#define VAL_CMD    0x10000
#define VAL_GLOBAL (VAL_CMD + CMD_OPTS_MAX)
#define VAL_HELP   (VAL_GLOBAL + 1000)

static void
usage(FILE *out)
{
	fprintf(out,
	    "Usage: " LM_CLI_PROG " [global options] COMMAND [arguments] [options]\n"
	    "\n"
	    "Command-line tool of lunamatch, the job-matching backend.\n"
	    "\n"
	    "Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
	fprintf(out, "  %-10s %s\n", "help", "show the usage of a command");
	fprintf(out,
	    "\n"
	    "Global options may be given before the command or among its arguments\n"
	    "(\"--\" ends the options). Run '" LM_CLI_PROG
	    " help COMMAND' for a command's usage.\n"
	    "Exit status: 0 ok, 1 the operation failed, 2 usage error, 3 the service\n"
	    "or Kafka unavailable.\n\n");
	lm_config_usage(out, LM_PROG_CLI);
	fprintf(out,
	    "\nThe tool's own logs are warnings and errors only unless --log-level or\n"
	    "LUNAMATCH_LOG_LEVEL asks for a level.\n");
}

static void
command_usage(FILE *out, const lm_cli_command *c)
{
	fputs(c->usage, out);
	fprintf(out,
	    "\nGlobal options (--brokers, --data-dir, --json, --url, --topic-*, ...)\n"
	    "may be given before the command or among its arguments; see '" LM_CLI_PROG
	    " --help'.\n");
}

static const lm_cli_command *
find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* An argument vector that owns the strings it holds. */
struct vec {
	char **v;
	int n, cap;
};

/*
 * The CLI speaks through its output: its own logs are warnings and errors
 * only, unless a level was asked for with --log-level or LUNAMATCH_LOG_LEVEL.
 */
static lm_log_level
log_level(const lm_config *cfg)
{
	if (getenv("LUNAMATCH_LOG_LEVEL") != NULL || cfg->log_level_given)
		return cfg->log_level;
	return cfg->log_level > LM_LOG_WARN ? cfg->log_level : LM_LOG_WARN;
}

static int
vec_push(struct vec *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		int cap = a->cap ? a->cap * 2 : 16;
		char **v = realloc(a->v, (size_t) cap * sizeof(*v));
		if (v == NULL)
			return -1;
		a->v = v;
		a->cap = cap;
	}
	if ((a->v[a->n] = strdup(s)) == NULL)
		return -1;
	a->n++;
	a->v[a->n] = NULL;
	return 0;
}

/* "prefix" + name + ("=" value): one argument. */
static int
vec_push_opt(struct vec *a, const char *prefix, const char *name, const char *value)
{
	size_t len = strlen(prefix) + strlen(name) + (value ? strlen(value) + 1 : 0) + 1;
	char *s = malloc(len);
	int rv;

	if (s == NULL)
		return -1;
	snprintf(s, len, "%s%s%s%s", prefix, name, value ? "=" : "", value ? value : "");
	rv = vec_push(a, s);
	free(s);
	return rv;
}

static void
vec_free(struct vec *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}

/*
 * The long options of lo[0..n) that the long option arg ("--name" or
 * "--name=value") abbreviates, as "--a, --b" in buf (cut with "..." when it
 * does not fit). Returns how many there are: more than one makes arg
 * ambiguous (getopt_long does not say which of its errors it reports).
 */
static size_t
prefix_matches(const struct option *lo, size_t n, const char *arg, char *buf, size_t len)
{
	size_t count = 0, at = 0, namelen;

	buf[0] = '\0';
	if (strncmp(arg, "--", 2) != 0)
		return 0;
	arg += 2;
	if ((namelen = strcspn(arg, "=")) == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(lo[i].name, arg, namelen) != 0)
			continue;
		int w =
		    snprintf(buf + at, len - at, "%s--%s", count ? ", " : "", lo[i].name);
		count++;
		if (w < 0 || (size_t) w >= len - at)
			at = len; /* cut: marked below */
		else
			at += (size_t) w;
	}
	if (at == len && len >= 4)
		memcpy(buf + len - 4, "...", 4);
	return count;
}

/*
 * Splits the arguments of command c (args[0] is its name) into global flags,
 * appended to globals as "--name[=value]", and the handler's vector cmd:
 * name, own options, "--", positional arguments. Returns LM_CLI_EXIT_OK,
 * LM_CLI_EXIT_USAGE after printing the error, -1 when --help was given, or
 * LM_CLI_EXIT_FAIL when out of memory.
 */
static int
split_args(
    const lm_cli_command *c, int argc, char **args, struct vec *globals, struct vec *cmd)
{
	struct option lo[CMD_OPTS_MAX + NGLOBAL + 2];
	struct vec pos = {0};
	char spec[64], names[512];
	size_t n = 0;
	int rv = LM_CLI_EXIT_OK;

	if (strlen(c->shortopts) > sizeof(spec) - 4) {
		lm_cli_error(c->name, "too many short options in the command table");
		return LM_CLI_EXIT_FAIL;
	}

	for (const struct option *o = c->longopts; o != NULL && o->name != NULL; o++) {
		if (n == CMD_OPTS_MAX) {
			lm_cli_error(c->name, "too many options in the command table");
			return LM_CLI_EXIT_FAIL;
		}
		/* Renumbered: the command's own values may collide with the
		 * codes of this parse (1 for a positional argument, '?', ':'). */
		lo[n] = *o;
		lo[n].flag = NULL;
		lo[n].val = VAL_CMD + (int) n;
		n++;
	}
	/* The global flags, as config.c lists them for the CLI. */
	const char *gname[NGLOBAL];
	size_t nglobal = 0;
	for (bool has_arg; nglobal < NGLOBAL && lm_config_flag(LM_PROG_CLI, nglobal,
	                                            &gname[nglobal], &has_arg) == LM_OK;
	     nglobal++)
		lo[n++] = (struct option){gname[nglobal],
		    has_arg ? required_argument : no_argument, NULL,
		    VAL_GLOBAL + (int) nglobal};
	lo[n++] = (struct option){"help", no_argument, NULL, VAL_HELP};
	lo[n] = (struct option){NULL, 0, NULL, 0};
	/* "-": every non-option comes back in order as val 1 (independent of
	 * POSIXLY_CORRECT); ":": a missing value comes back as ':'. */
	snprintf(spec, sizeof(spec), "-:h%s", c->shortopts);

	if (vec_push(cmd, c->name) != 0)
		goto nomem;
	optind = 0;
	opterr = 0;
	for (;;) {
		int v = getopt_long(argc, args, spec, lo, NULL);
		if (v == -1)
			break;
		if (v == 1) {
			if (vec_push(&pos, optarg) != 0)
				goto nomem;
		} else if (v == 'h' || v == VAL_HELP) {
			rv = -1;
			goto done;
		} else if (v == ':') {
			rv = lm_cli_usage_error(
			    c->name, "option %s needs a value", args[optind - 1]);
			goto done;
		} else if (v == '?') {
			/* optopt: the val of a known long option given a value
			 * it does not take, an unknown short option, or 0: an
			 * unknown long option, or one that abbreviates several. */
			const char *name = NULL;
			for (size_t i = 0; i < n && name == NULL; i++)
				if (lo[i].val == optopt)
					name = lo[i].name;
			if (name != NULL)
				rv = lm_cli_usage_error(
				    c->name, "option --%s takes no value", name);
			else if (optopt != 0)
				rv = lm_cli_usage_error(
				    c->name, "unknown option -%c", optopt);
			else if (prefix_matches(
			             lo, n, args[optind - 1], names, sizeof(names)) > 1)
				rv = lm_cli_usage_error(c->name,
				    "ambiguous option %.*s (%s)",
				    (int) strcspn(args[optind - 1], "="),
				    args[optind - 1], names);
			else
				rv = lm_cli_usage_error(
				    c->name, "unknown option %s", args[optind - 1]);
			goto done;
		} else if (v >= VAL_GLOBAL && v < VAL_GLOBAL + (int) nglobal) {
			if (vec_push_opt(globals, "--", gname[v - VAL_GLOBAL], optarg) !=
			    0)
				goto nomem;
		} else if (v >= VAL_CMD && v < VAL_CMD + CMD_OPTS_MAX) {
			if (vec_push_opt(cmd, "--", lo[v - VAL_CMD].name, optarg) != 0)
				goto nomem;
		} else {
			/* The value as an argument of its own: glued on ("-n" ""),
			 * an empty one would leave "-n" to take the next argument. */
			char sh[3] = {'-', (char) v, '\0'};
			if (vec_push(cmd, sh) != 0 ||
			    (optarg != NULL && vec_push(cmd, optarg) != 0))
				goto nomem;
		}
	}
	/* Everything after "--" is positional. */
	for (int i = optind; i < argc; i++)
		if (vec_push(&pos, args[i]) != 0)
			goto nomem;
	if (vec_push(cmd, "--") != 0)
		goto nomem;
	for (int i = 0; i < pos.n; i++)
		if (vec_push(cmd, pos.v[i]) != 0)
			goto nomem;
done:
	vec_free(&pos);
	return rv;
nomem:
	vec_free(&pos);
	lm_cli_error(c->name, "out of memory");
	return LM_CLI_EXIT_FAIL;
}

/*
 * Whether argv[argi - 1] is a "--" that ended the global options before the
 * command (argi: where lm_config_load stopped), rather than the value of the
 * flag before it ("--data-dir --"): then the options before it parse alone
 * and stop at its place.
 */
static bool
dashes_end_globals(int argi, char **argv)
{
	lm_config tmp;
	char err[512];

	return argi > 1 && strcmp(argv[argi - 1], "--") == 0 &&
	       lm_config_load(&tmp, LM_PROG_CLI, argi - 1, argv, err, sizeof(err)) ==
	           LM_OK &&
	       tmp.argi == argi - 1;
}

int
main(int argc, char **argv)
{
	lm_config cfg;
	char err[512];
	const lm_cli_command *c;
	struct vec globals = {0}, cmd = {0};
	int rv;

	if (lm_config_load(&cfg, LM_PROG_CLI, argc, argv, err, sizeof(err)) != LM_OK)
		return lm_cli_usage_error(NULL, "%s", err);
	if (cfg.version) {
		printf(LM_CLI_PROG " %s\n", lm_version());
		return LM_CLI_EXIT_OK;
	}
	if (cfg.argi >= argc) {
		if (cfg.help) {
			usage(stdout);
			return LM_CLI_EXIT_OK;
		}
		usage(stderr);
		return LM_CLI_EXIT_USAGE;
	}
	if (strcmp(argv[cfg.argi], "help") == 0 || cfg.help) {
		/* `help [COMMAND]` and `--help COMMAND`. */
		int ai = cfg.argi + (strcmp(argv[cfg.argi], "help") == 0 ? 1 : 0);
		if (ai >= argc) {
			usage(stdout);
			return LM_CLI_EXIT_OK;
		}
		if (ai + 1 < argc)
			return lm_cli_usage_error(NULL, "help takes one command name");
		if (strcmp(argv[ai], "help") == 0) { /* a command of the list too */
			usage(stdout);
			return LM_CLI_EXIT_OK;
		}
		if ((c = find_command(argv[ai])) == NULL)
			return lm_cli_usage_error(
			    NULL, "unknown command \"%s\"", argv[ai]);
		command_usage(stdout, c);
		return LM_CLI_EXIT_OK;
	}
	if ((c = find_command(argv[cfg.argi])) == NULL)
		return lm_cli_usage_error(NULL, "unknown command \"%s\"", argv[cfg.argi]);

	/* Global flags written before the command, then those after it. A "--"
	 * that ended the first ones is left out: it would end the parse of
	 * globals before the others. */
	int nbefore = dashes_end_globals(cfg.argi, argv) ? cfg.argi - 1 : cfg.argi;
	if (vec_push(&globals, argv[0]) != 0)
		goto nomem;
	for (int i = 1; i < nbefore; i++)
		if (vec_push(&globals, argv[i]) != 0)
			goto nomem;
	rv = split_args(c, argc - cfg.argi, argv + cfg.argi, &globals, &cmd);
	if (rv == -1) {
		command_usage(stdout, c);
		rv = LM_CLI_EXIT_OK;
		goto out;
	}
	if (rv != LM_CLI_EXIT_OK)
		goto out;
	if (lm_config_load(&cfg, LM_PROG_CLI, globals.n, globals.v, err, sizeof(err)) !=
	    LM_OK) {
		rv = lm_cli_usage_error(c->name, "%s", err);
		goto out;
	}
	lm_log_set_service("cli");
	lm_log_set_level(log_level(&cfg));
	rv = c->fn(&cfg, cmd.n, cmd.v);
out:
	vec_free(&globals);
	vec_free(&cmd);
	return rv;
nomem:
	vec_free(&globals);
	lm_cli_error(NULL, "out of memory");
	return LM_CLI_EXIT_FAIL;
}
