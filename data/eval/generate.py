#!/usr/bin/env python3
"""Generates the evaluation set of `lunamatch eval` (data/eval/).

The set is written out here as annotated records: every posting and profile
carries, next to its lunamatch.v1 fields, the annotations a human grader uses
(occupation, career level, metro area, licences held or required). The
relevance grade of every candidate/posting pair is then derived from those
annotations by the rubric of docs/eval-rubric.md, implemented once in
grade() below; the annotations never reach the records the engine sees.
The grades were written against the rubric, never against engine output.

Output (deterministic, standard library only):
  postings.jsonl    lunamatch.v1.JobPosting records, one per line
  profiles.jsonl    lunamatch.v1.CandidateProfile records, one per line
  judgments.jsonl   {"candidate", "job", "grade"} for every pair graded 1..3,
                    {"candidate", "job", "must_not_appear": true, "reason"}
                    for the pairs that must never be shown; every pair not
                    listed is graded 0.

  python3 data/eval/generate.py            # rewrite data/eval/
  python3 data/eval/generate.py --check    # exit 1 if the files are stale
"""
import argparse
import json
import os
import sys

REF_TIME = 1795000000  # 2026-11-18 11:06:40 UTC, as data/samples/
DAY = 86400

# ---- occupations -------------------------------------------------------
# code: (sector, category, industry, skills in order of centrality,
#        required any-of group, licence skill or None, titles by level)
# Levels: 1 entry, 2 mid, 3 senior, 4 lead.
OCC = {
    "backend": ("software", "Software Engineering", "Technology",
                ["Go", "PostgreSQL", "REST APIs", "Docker", "Kubernetes",
                 "Python", "Kafka", "Microservices"],
                ["Go", "Python", "Java"], None,
                {1: "Junior Backend Developer", 2: "Software Engineer II, Payments APIs",
                 3: "Senior Backend Engineer", 4: "Staff Engineer, Platform"}),
    "frontend": ("software", "Software Engineering", "Technology",
                 ["JavaScript", "TypeScript", "React", "CSS", "HTML",
                  "Accessibility", "GraphQL", "Node.js"],
                 ["JavaScript", "TypeScript"], None,
                 {1: "Junior Frontend Developer", 2: "Frontend Engineer",
                  3: "Senior Frontend Engineer (React)", 4: "Lead UI Engineer"}),
    "devops": ("software", "Infrastructure", "Technology",
               ["Kubernetes", "Terraform", "AWS", "CI/CD", "Linux",
                "Prometheus", "Docker", "Python"],
               ["Kubernetes", "Terraform"], None,
               {1: "Junior DevOps Engineer", 2: "Site Reliability Engineer",
                3: "Senior Platform Engineer", 4: "Head of Infrastructure"}),
    "mobile": ("software", "Software Engineering", "Technology",
               ["Swift", "iOS", "Kotlin", "Android", "REST APIs", "CI/CD"],
               ["Swift", "Kotlin"], None,
               {1: "Junior Mobile Developer", 2: "iOS Engineer",
                3: "Senior Android Engineer", 4: "Mobile Engineering Lead"}),
    "ds": ("data", "Data Science", "Technology",
           ["Python", "SQL", "Statistics", "Machine Learning", "pandas",
            "A/B Testing", "Data Visualization"],
           ["Python", "R"], None,
           {1: "Junior Data Scientist", 2: "Data Scientist",
            3: "Senior Data Scientist, Experimentation", 4: "Principal Data Scientist"}),
    "mle": ("data", "Machine Learning", "Technology",
            ["Python", "PyTorch", "Machine Learning", "MLOps", "Kubernetes",
             "Spark", "Docker"],
            ["Python"], None,
            {1: "ML Engineer I", 2: "Machine Learning Engineer",
             3: "Senior Machine Learning Engineer", 4: "ML Platform Lead"}),
    "de": ("data", "Data Engineering", "Technology",
           ["SQL", "Spark", "Airflow", "Kafka", "dbt", "Python", "AWS"],
           ["SQL"], None,
           {1: "Junior Data Engineer", 2: "Data Engineer",
            3: "Senior Data Engineer", 4: "Data Platform Lead"}),
    "analyst": ("data", "Analytics", "Retail",
                ["SQL", "Tableau", "Microsoft Excel", "Power BI", "Statistics",
                 "Data Visualization"],
                ["SQL", "Microsoft Excel"], None,
                {1: "Junior Data Analyst", 2: "Business Intelligence Analyst",
                 3: "Senior Analytics Specialist", 4: "Analytics Manager"}),
    "accountant": ("finance", "Accounting", "Financial Services",
                   ["Accounting", "GAAP", "Account Reconciliation", "Financial Reporting",
                    "QuickBooks", "Microsoft Excel", "Accounts Payable"],
                   ["Accounting", "GAAP"], "CPA",
                   {1: "Staff Accountant", 2: "Accountant",
                    3: "Senior Accountant (CPA)", 4: "Controller"}),
    "fpa": ("finance", "Finance", "Financial Services",
            ["Financial Modeling", "FP&A", "Budgeting", "Financial Forecasting",
             "Microsoft Excel", "Financial Analysis", "SQL"],
            ["Financial Modeling", "Financial Analysis"], None,
            {1: "Junior Financial Analyst", 2: "FP&A Analyst",
             3: "Senior Financial Analyst", 4: "Head of FP&A"}),
    "compliance": ("finance", "Compliance", "Banking",
                   ["Anti-Money Laundering", "Know Your Customer", "Regulatory Compliance",
                    "Risk Management", "Auditing"],
                   ["Anti-Money Laundering", "Know Your Customer"], None,
                   {1: "KYC Analyst", 2: "AML Compliance Analyst",
                    3: "Senior Compliance Officer", 4: "Head of Financial Crime"}),
    "nurse": ("healthcare", "Nursing", "Healthcare",
              ["Registered Nurse", "Patient Care", "Medication Administration",
               "Basic Life Support", "Electronic Health Records", "Epic Systems",
               "Vital Signs", "Triage"],
              ["Patient Care"], "Registered Nurse",
              {1: "Graduate Registered Nurse", 2: "Registered Nurse, Med-Surg",
               3: "Senior Staff Nurse, Emergency", 4: "Charge Nurse"}),
    "coder": ("healthcare", "Health Information", "Healthcare",
              ["Medical Coding", "Medical Billing", "HIPAA", "Medical Terminology",
               "Electronic Health Records"],
              ["Medical Coding"], None,
              {1: "Medical Coding Assistant", 2: "Medical Coder",
               3: "Senior Medical Coding Specialist", 4: "Coding Manager"}),
    "pt": ("healthcare", "Therapy", "Healthcare",
           ["Physical Therapy", "Patient Care", "Geriatric Care", "Case Management",
            "Electronic Health Records"],
           ["Physical Therapy"], None,
           {1: "Physical Therapist (New Grad)", 2: "Physical Therapist",
            3: "Senior Physiotherapist", 4: "Rehabilitation Lead"}),
    "phleb": ("healthcare", "Laboratory", "Healthcare",
              ["Phlebotomy", "Vital Signs", "Infection Control", "Medical Terminology",
               "Patient Care"],
              ["Phlebotomy"], None,
              {1: "Phlebotomist Trainee", 2: "Phlebotomist",
               3: "Lead Phlebotomist", 4: "Lab Services Supervisor"}),
    "electrician": ("trades", "Electrical", "Construction",
                    ["Electrical Wiring", "National Electrical Code", "Conduit Bending",
                     "Blueprint Reading", "Electrical Troubleshooting", "OSHA Safety",
                     "Motor Controls"],
                    ["Electrical Wiring", "Electrical Troubleshooting"], None,
                    {1: "Apprentice Electrician", 2: "Journeyman Electrician",
                     3: "Commercial Electrician", 4: "Master Electrician / Foreman"}),
    "plumber": ("trades", "Plumbing", "Construction",
                ["Plumbing", "Pipefitting", "Backflow Prevention Testing",
                 "Water Heater Installation", "Drain Cleaning", "Blueprint Reading"],
                ["Plumbing", "Pipefitting"], None,
                {1: "Plumber's Apprentice", 2: "Service Plumber",
                 3: "Senior Plumber", 4: "Plumbing Supervisor"}),
    "welder": ("trades", "Welding", "Manufacturing",
               ["Welding", "MIG Welding", "TIG Welding", "Metal Fabrication",
                "Blueprint Reading", "Pipe Welding"],
               ["MIG Welding", "TIG Welding", "Stick Welding"], None,
               {1: "Welder Helper", 2: "MIG/TIG Welder",
                3: "Senior Pipe Welder", 4: "Welding Supervisor"}),
    "hvac": ("trades", "HVAC", "Construction",
             ["HVAC", "Refrigeration", "EPA 608 Certification", "Ductwork",
              "Electrical Troubleshooting", "Boiler Operation"],
             ["HVAC"], "EPA 608 Certification",
             {1: "HVAC Helper", 2: "HVAC Technician",
              3: "Senior HVAC Service Technician", 4: "HVAC Service Manager"}),
    "ae": ("sales", "Sales", "Software",
           ["B2B Sales", "Salesforce", "Solution Selling", "Account Management",
            "Negotiation", "Lead Generation"],
           ["B2B Sales", "Solution Selling"], None,
           {1: "Associate Account Executive", 2: "Account Executive",
            3: "Senior Account Executive, Enterprise", 4: "Regional Sales Director"}),
    "sdr": ("sales", "Sales", "Software",
            ["Cold Calling", "Lead Generation", "HubSpot", "CRM", "Email Marketing"],
            ["Cold Calling", "Lead Generation"], None,
            {1: "Sales Development Representative", 2: "Business Development Representative",
             3: "Senior SDR", 4: "SDR Team Lead"}),
    "csm": ("sales", "Customer Success", "Software",
            ["Customer Success", "Account Management", "CRM", "Salesforce",
             "Customer Service"],
            ["Customer Success", "Account Management"], None,
            {1: "Customer Success Associate", 2: "Customer Success Manager",
             3: "Senior Customer Success Manager", 4: "Head of Customer Success"}),
    "marketing": ("sales", "Marketing", "Consumer Goods",
                  ["Digital Marketing", "SEO", "Google Ads", "Content Marketing",
                   "Marketing Automation", "Google Analytics"],
                  ["Digital Marketing", "SEO"], None,
                  {1: "Marketing Coordinator", 2: "Digital Marketing Specialist",
                   3: "Senior Growth Marketer", 4: "Marketing Manager"}),
    "productdesign": ("design", "Product Design", "Technology",
                      ["Product Design", "Figma", "Prototyping", "UX Design",
                       "Design Systems", "UX Research", "Wireframing"],
                      ["Figma", "Sketch"], None,
                      {1: "Junior Product Designer", 2: "Product Designer",
                       3: "Senior Product Designer", 4: "Design Lead"}),
    "graphic": ("design", "Graphic Design", "Media",
                ["Graphic Design", "Adobe Illustrator", "Adobe Photoshop",
                 "Adobe InDesign", "Typography", "Visual Design"],
                ["Adobe Illustrator", "Adobe Photoshop"], None,
                {1: "Junior Graphic Designer", 2: "Graphic Designer",
                 3: "Senior Visual Designer", 4: "Art Director"}),
    "uxr": ("design", "UX Research", "Technology",
            ["UX Research", "Usability Testing", "User Research", "Interaction Design",
             "Wireframing"],
            ["UX Research", "User Research"], None,
            {1: "UX Research Assistant", 2: "UX Researcher",
             3: "Senior UX Researcher", 4: "Research Lead"}),
    "motion": ("design", "Motion Design", "Media",
               ["Motion Graphics", "Adobe After Effects", "Animation",
                "Adobe Premiere Pro", "Video Editing"],
               ["Adobe After Effects", "Motion Graphics"], None,
               {1: "Junior Motion Designer", 2: "Motion Designer",
                3: "Senior Motion Designer", 4: "Motion Design Lead"}),
}

# Occupations a grader considers close neighbours (a good candidate of one
# is a plausible candidate of the other).
CLOSE = {
    frozenset(p) for p in [
        ("backend", "devops"), ("ds", "mle"), ("de", "mle"), ("ds", "analyst"),
        ("de", "backend"), ("ae", "sdr"), ("ae", "csm"), ("productdesign", "uxr"),
        ("graphic", "motion"), ("accountant", "fpa"), ("frontend", "mobile"),
    ]
}

# ---- places -------------------------------------------------------------
# code: (city, region, country, metro)
PLACES = {
    "chicago": ("Chicago", "Illinois", "US", "chicago"),
    "evanston": ("Evanston", "Illinois", "US", "chicago"),
    "austin": ("Austin", "Texas", "US", "austin"),
    "nyc": ("New York", "New York", "US", "nyc"),
    "seattle": ("Seattle", "Washington", "US", "seattle"),
    "london": ("London", "England", "GB", "london"),
    "manchester": ("Manchester", "England", "GB", "manchester"),
    "berlin": ("Berlin", "Berlin", "DE", "berlin"),
    "bengaluru": ("Bengaluru", "Karnataka", "IN", "bengaluru"),
    "toronto": ("Toronto", "Ontario", "CA", "toronto"),
}

LEVEL_ENUM = {1: "EXPERIENCE_LEVEL_ENTRY", 2: "EXPERIENCE_LEVEL_MID",
              3: "EXPERIENCE_LEVEL_SENIOR", 4: "EXPERIENCE_LEVEL_LEAD"}
LEVEL_YEARS = {1: 0, 2: 3, 3: 6, 4: 9}
REMOTE_ENUM = {"onsite": "REMOTE_POLICY_ONSITE", "hybrid": "REMOTE_POLICY_HYBRID",
               "remote": "REMOTE_POLICY_REMOTE"}

# ---- postings -------------------------------------------------------------
# (occupation, level, place, remote policy); ids are job-<occ>-<n>.
POSTINGS = [
    ("backend", 2, "chicago", "hybrid"), ("backend", 3, "nyc", "onsite"),
    ("backend", 3, "berlin", "remote"),
    ("frontend", 2, "austin", "hybrid"), ("frontend", 3, "london", "remote"),
    ("devops", 3, "seattle", "hybrid"), ("devops", 2, "chicago", "remote"),
    ("mobile", 2, "toronto", "hybrid"), ("mobile", 3, "nyc", "remote"),
    ("ds", 2, "chicago", "hybrid"), ("ds", 3, "london", "hybrid"),
    ("ds", 1, "bengaluru", "onsite"),
    ("mle", 3, "seattle", "remote"), ("mle", 2, "berlin", "hybrid"),
    ("de", 2, "austin", "remote"), ("de", 3, "chicago", "onsite"),
    ("analyst", 1, "chicago", "onsite"), ("analyst", 2, "manchester", "hybrid"),
    ("accountant", 2, "chicago", "onsite"), ("accountant", 3, "nyc", "hybrid"),
    ("accountant", 1, "toronto", "onsite"),
    ("fpa", 2, "london", "hybrid"), ("fpa", 3, "chicago", "hybrid"),
    ("compliance", 2, "london", "onsite"), ("compliance", 3, "nyc", "hybrid"),
    ("compliance", 1, "bengaluru", "onsite"),
    ("nurse", 2, "chicago", "onsite"), ("nurse", 3, "seattle", "onsite"),
    ("nurse", 1, "manchester", "onsite"), ("nurse", 4, "evanston", "onsite"),
    ("coder", 2, "austin", "remote"), ("coder", 3, "chicago", "hybrid"),
    ("pt", 2, "toronto", "onsite"), ("pt", 3, "chicago", "onsite"),
    ("phleb", 1, "chicago", "onsite"), ("phleb", 2, "nyc", "onsite"),
    ("electrician", 2, "chicago", "onsite"), ("electrician", 1, "austin", "onsite"),
    ("electrician", 4, "seattle", "onsite"),
    ("plumber", 2, "chicago", "onsite"), ("plumber", 3, "manchester", "onsite"),
    ("welder", 2, "austin", "onsite"), ("welder", 3, "toronto", "onsite"),
    ("hvac", 2, "chicago", "onsite"), ("hvac", 3, "nyc", "onsite"),
    ("ae", 2, "chicago", "hybrid"), ("ae", 3, "london", "hybrid"),
    ("ae", 3, "austin", "remote"),
    ("sdr", 1, "chicago", "hybrid"), ("sdr", 1, "berlin", "onsite"),
    ("csm", 2, "nyc", "remote"), ("csm", 3, "toronto", "hybrid"),
    ("marketing", 2, "london", "hybrid"), ("marketing", 3, "chicago", "remote"),
    ("productdesign", 2, "berlin", "hybrid"), ("productdesign", 3, "nyc", "remote"),
    ("graphic", 2, "chicago", "onsite"), ("graphic", 1, "london", "hybrid"),
    ("uxr", 3, "seattle", "remote"), ("uxr", 2, "london", "hybrid"),
    ("motion", 2, "austin", "hybrid"), ("motion", 3, "berlin", "remote"),
]

# ---- profiles -------------------------------------------------------------
# (id suffix, occupation, level, place, relocate, remote preference,
#  skills dropped from the occupation's list, extra skills, licence held)
# A licence is held when the occupation has one unless held=False.
PROFILES = [
    ("backend-chicago", "backend", 3, "chicago", False, "hybrid", [], ["Java"], True),
    ("backend-berlin", "backend", 2, "berlin", False, "remote", ["Kafka"], [], True),
    ("fullstack-austin", "frontend", 2, "austin", True, "hybrid", ["Accessibility"],
     ["Python", "PostgreSQL"], True),
    ("frontend-london", "frontend", 3, "london", False, "remote", [], [], True),
    ("sre-seattle", "devops", 3, "seattle", False, "hybrid", [], ["Go"], True),
    ("devops-bengaluru", "devops", 2, "bengaluru", False, "remote", [], [], True),
    ("ios-toronto", "mobile", 2, "toronto", False, "hybrid", ["Kotlin", "Android"], [], True),
    ("ds-chicago", "ds", 2, "evanston", False, "hybrid", [], ["R"], True),
    ("ds-london", "ds", 3, "london", True, "hybrid", [], ["PyTorch"], True),
    ("ds-grad-bengaluru", "ds", 1, "bengaluru", False, "onsite", ["A/B Testing"], [], True),
    ("mle-seattle", "mle", 3, "seattle", False, "remote", [], ["Go"], True),
    ("mle-berlin", "mle", 2, "berlin", True, "hybrid", ["Spark"], [], True),
    ("de-austin", "de", 2, "austin", False, "remote", [], [], True),
    ("de-chicago", "de", 3, "chicago", False, "onsite", [], ["Go"], True),
    ("analyst-chicago", "analyst", 1, "chicago", False, "onsite", ["Power BI"], [], True),
    ("analyst-manchester", "analyst", 2, "manchester", False, "hybrid", [], [], True),
    ("accountant-chicago", "accountant", 2, "chicago", False, "onsite", [], [], True),
    ("bookkeeper-toronto", "accountant", 1, "toronto", False, "onsite",
     ["GAAP", "Financial Reporting"], ["Bookkeeping"], False),
    ("fpa-london", "fpa", 3, "london", False, "hybrid", [], [], True),
    ("fpa-chicago", "fpa", 2, "chicago", True, "hybrid", ["SQL"], [], True),
    ("aml-london", "compliance", 2, "london", False, "onsite", [], [], True),
    ("kyc-bengaluru", "compliance", 1, "bengaluru", False, "onsite", ["Auditing"], [], True),
    ("nurse-chicago", "nurse", 3, "chicago", False, "onsite", [], ["Wound Care"], True),
    ("nurse-seattle", "nurse", 2, "seattle", False, "onsite", [], [], True),
    ("nurse-aide-chicago", "nurse", 1, "chicago", False, "onsite", ["Registered Nurse"],
     [], False),
    ("coder-austin", "coder", 2, "austin", False, "remote", [], [], True),
    ("pt-toronto", "pt", 2, "toronto", False, "onsite", [], [], True),
    ("phleb-nyc", "phleb", 2, "nyc", False, "onsite", [], [], True),
    ("electrician-chicago", "electrician", 2, "chicago", False, "onsite", [], [], True),
    ("electrician-seattle", "electrician", 4, "seattle", False, "onsite", [], ["PLC Programming"],
     True),
    ("plumber-manchester", "plumber", 3, "manchester", False, "onsite", [], [], True),
    ("welder-austin", "welder", 2, "austin", True, "onsite", ["Pipe Welding"], [], True),
    ("hvac-chicago", "hvac", 2, "chicago", False, "onsite", [], [], True),
    ("hvac-helper-nyc", "hvac", 1, "nyc", False, "onsite", ["EPA 608 Certification"], [],
     False),
    ("ae-chicago", "ae", 3, "chicago", False, "hybrid", [], [], True),
    ("sdr-berlin", "sdr", 1, "berlin", False, "onsite", [], [], True),
    ("csm-nyc", "csm", 2, "nyc", False, "remote", [], ["HubSpot"], True),
    ("marketing-london", "marketing", 2, "london", False, "hybrid", [], [], True),
    ("designer-berlin", "productdesign", 2, "berlin", False, "hybrid", [], [], True),
    ("designer-nyc", "productdesign", 3, "nyc", False, "remote", [], ["Accessibility"], True),
    ("graphic-chicago", "graphic", 2, "chicago", False, "onsite", [], ["Illustration"], True),
    ("uxr-seattle", "uxr", 3, "seattle", False, "remote", [], ["Figma"], True),
    ("motion-austin", "motion", 2, "austin", False, "hybrid", [], ["Blender"], True),
    ("career-change-chicago", "analyst", 1, "chicago", True, "hybrid", ["Tableau"],
     ["Python", "Accounting"], True),
]

HEADLINE = {1: "early-career", 2: "experienced", 3: "senior", 4: "lead"}


def loc(place):
    city, region, country, _ = PLACES[place]
    return {"city": city, "region": region, "country": country}


def posting_id(occ, n):
    return "job-%s-%d" % (occ, n)


def make_postings():
    out, seen = [], {}
    for i, (occ, level, place, remote) in enumerate(POSTINGS):
        sector, category, industry, skills, group, licence, titles = OCC[occ]
        seen[occ] = seen.get(occ, 0) + 1
        pid = posting_id(occ, seen[occ])
        # The most central skills weigh 2, the rest 1; one skill is left
        # out per posting by turns so that postings of one occupation differ.
        drop = skills[3 + (i % (len(skills) - 3))] if len(skills) > 4 else None
        names = [s for s in skills if s != drop]
        if licence is not None and licence not in names:
            names.insert(0, licence)
        p = {
            "id": pid, "version": 1, "status": "POSTING_STATUS_OPEN",
            "title": titles[level], "company": "%s %s Co" % (
                PLACES[place][0], category.split()[0]),
            "description": "%s role in %s." % (titles[level], category),
            "category": category, "industry": industry,
            "job_function": sector.capitalize(),
            "employment_type": "EMPLOYMENT_TYPE_FULL_TIME",
            "experience_level": LEVEL_ENUM[level],
            "min_years_experience": LEVEL_YEARS[level],
            "locations": [loc(place)], "remote": REMOTE_ENUM[remote],
            "skills": [{"name": s, "weight": 2 if k < 3 else 1}
                       for k, s in enumerate(names)],
            "requirement_groups": [{"label": " or ".join(group), "skills": group}],
            "posted_at": REF_TIME - (i % 30) * DAY,
        }
        if licence is not None:
            p["requirement_groups"].append({"label": licence, "skills": [licence]})
        ann = {"occ": occ, "level": level, "place": place, "remote": remote,
               "licence": licence}
        out.append((p, ann))
    return out


def make_profiles():
    out = []
    for i, (suffix, occ, level, place, relocate, remote, drop, extra, held) in \
            enumerate(PROFILES):
        sector, category, industry, skills, group, licence, titles = OCC[occ]
        years = LEVEL_YEARS[level] + 1 + (i % 3)
        names = [s for s in skills if s not in drop] + extra
        if licence is not None and not held and licence in names:
            names.remove(licence)
        if licence is not None and held and licence not in names:
            names.insert(0, licence)
        c = {
            "id": "cand-" + suffix, "version": 1,
            "headline": "%s %s, %d years" % (
                HEADLINE[level].capitalize(), category.lower(), years),
            "skills": [{"name": s, "years": float(min(years, 2 + (k % 5) + level)),
                        "level": "SKILL_LEVEL_ADVANCED" if level >= 3
                        else "SKILL_LEVEL_INTERMEDIATE"}
                       for k, s in enumerate(names)],
            "years_experience": years, "experience_level": LEVEL_ENUM[level],
            "locations": [loc(place)], "willing_to_relocate": relocate,
            "remote": REMOTE_ENUM[remote],
            "desired_employment_types": ["EMPLOYMENT_TYPE_FULL_TIME"],
            "career_goals": {"desired_titles": [titles[min(level + 1, 4)]],
                             "desired_categories": [category]},
            "updated_at": REF_TIME - (i % 45) * DAY,
        }
        ann = {"occ": occ, "level": level, "place": place, "relocate": relocate,
               "remote": remote,
               "licences": [licence] if licence is not None and held else []}
        out.append((c, ann))
    return out


def location_fit(c, p):
    """0: workable as is; 1: workable with a move or a policy compromise;
    None: not workable (the candidate cannot take the job)."""
    cc, pc = PLACES[c["place"]][2], PLACES[p["place"]][2]
    same_metro = PLACES[c["place"]][3] == PLACES[p["place"]][3]
    if p["remote"] == "remote":
        if cc == pc:
            return 0
        return 1 if c["relocate"] else None
    if same_metro:
        return 1 if c["remote"] == "remote" else 0
    if c["relocate"]:
        return 1
    return None


def grade(c, p):
    """The rubric of docs/eval-rubric.md. Returns (grade, must_not_reason)."""
    same = c["occ"] == p["occ"]
    close = frozenset((c["occ"], p["occ"])) in CLOSE
    sector = OCC[c["occ"]][0] == OCC[p["occ"]][0]
    if same:
        g = 3
    elif close:
        g = 2
    elif sector:
        g = 1
    else:
        return 0, None
    # Career level: below the posting's costs a grade per level; above it
    # costs nothing (experience beyond the ask is never held against anyone).
    short = p["level"] - c["level"]
    if short > 0:
        g -= short
    loc_fit = location_fit(c, p)
    if p["licence"] is not None and p["licence"] not in c["licences"]:
        if same or close:
            return 0, "lacks the licence %s the posting requires" % p["licence"]
        return 0, None
    if loc_fit is None:
        if g >= 2:
            return 0, "cannot work at %s (%s) and will not relocate" % (
                PLACES[p["place"]][0], p["remote"])
        return 0, None
    g -= loc_fit
    return max(g, 0), None


def render():
    postings = make_postings()
    profiles = make_profiles()
    judg = []
    for c, ca in profiles:
        for p, pa in postings:
            g, why = grade(ca, pa)
            if why is not None:
                judg.append({"candidate": c["id"], "job": p["id"],
                             "must_not_appear": True, "reason": why})
            elif g > 0:
                judg.append({"candidate": c["id"], "job": p["id"], "grade": g})

    def lines(rows):
        return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n"
                       for r in rows)
    return {
        "postings.jsonl": lines(p for p, _ in postings),
        "profiles.jsonl": lines(c for c, _ in profiles),
        "judgments.jsonl": lines(judg),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    files = render()
    stale = False
    for name, text in files.items():
        path = os.path.join(a.out, name)
        if a.check:
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text:
                        stale = True
                        print("stale: " + name, file=sys.stderr)
            except OSError:
                stale = True
                print("missing: " + name, file=sys.stderr)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
