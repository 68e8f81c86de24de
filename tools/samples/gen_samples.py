#!/usr/bin/env python3
"""gen_samples.py - writes the sample job postings and candidate profiles.

The demo, the unit tests and the integration tests read three JSON-lines files
from data/samples/ (format in data/samples/README.md):

  postings.jsonl  lunamatch.v1.JobPosting records, one per line
  profiles.jsonl  lunamatch.v1.CandidateProfile records, one per line
  invalid.jsonl   records that ingest must reject, each with the reason

This script is their only source: the committed files are exactly what it
writes. It uses the Python 3 standard library only and is deterministic: the
records are written out by hand below, and the few values that vary (posting
and update times) come from a fixed-seed generator of our own, so every
Python 3 version on every platform produces the same bytes.

Records carry no personal or protected data: no names of people, ages,
genders, photos or nationalities; headlines describe work only. Companies
other than the first posting's are fictional.
"""

import argparse
import copy
import json
import os
import re
import sys

SEED = 20261118

# Reference time of the data set: 2026-11-18 11:06:40 UTC. Every timestamp is
# derived from it, never from the clock.
BASE_TIME = 1795000000
DAY = 86400
# A timestamp in the past (2023-11-14) for the one expired posting.
PAST_EXPIRY = 1700000000

# Codes the records use; ingest's rate table must know every currency here.
COUNTRIES = {"US", "GB", "DE", "FR", "NL", "IE", "IN", "CA", "AU", "SG", "BR"}
CURRENCIES = {"USD", "GBP", "EUR", "INR", "CAD", "AUD", "SGD", "BRL"}

ID_RE = re.compile(r"^(job|cand)-[a-z0-9]+(-[a-z0-9]+)*$")
FILES = ("postings.jsonl", "profiles.jsonl", "invalid.jsonl")


class Rng:
    """splitmix64: a tiny PRNG whose output depends on the seed alone."""

    MASK = (1 << 64) - 1

    def __init__(self, seed):
        self.state = seed & self.MASK

    def next64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return z ^ (z >> 31)

    def below(self, n):
        """An integer in [0, n), without modulo bias."""
        limit = (1 << 64) - ((1 << 64) % n)
        while True:
            v = self.next64()
            if v < limit:
                return v % n


# --------------------------------------------------------------------------
# Builders. They write fields in .proto order and leave out what is unset.
# --------------------------------------------------------------------------

LEVELS = {"B": "BEGINNER", "I": "INTERMEDIATE", "A": "ADVANCED", "E": "EXPERT"}


def num(x):
    """Integral floats as JSON integers, others as they are."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x


def loc(city, region, country):
    out = {}
    if city:
        out["city"] = city
    if region:
        out["region"] = region
    out["country"] = country
    return out


def posting_skills(spec):
    """["Python=2", "SQL"] -> [{"name": "Python", "weight": 2}, ...]"""
    out = []
    for item in spec:
        name, _, weight = item.partition("=")
        out.append({"name": name, "weight": num(float(weight or 1))})
    return out


def group(label, skills, years=None):
    g = {"label": label, "skills": list(skills)}
    if years:
        g["min_years_experience"] = num(float(years))
    return g


def posting(pid, title, company, desc, category, industry, function, etype, level,
            years, edu, locations, remote, salary, skills, groups=(), status="OPEN",
            posted_at=None, expires_at=0):
    rec = {"id": pid, "version": 1, "status": "POSTING_STATUS_" + status,
           "title": title, "company": company, "description": desc,
           "category": category, "industry": industry, "job_function": function,
           "employment_type": "EMPLOYMENT_TYPE_" + etype,
           "experience_level": "EXPERIENCE_LEVEL_" + level}
    if years:
        rec["min_years_experience"] = num(float(years))
    if edu:
        rec["education"] = "EDUCATION_" + edu
    rec["locations"] = [loc(*l) for l in locations]
    rec["remote"] = "REMOTE_POLICY_" + remote
    lo, hi, cur, period = salary
    rec["salary"] = {"min": lo, "max": hi, "currency": cur,
                     "period": "SALARY_PERIOD_" + period}
    rec["skills"] = posting_skills(skills)
    if groups:
        rec["requirement_groups"] = list(groups)
    rec["posted_at"] = posted_at
    rec["expires_at"] = expires_at
    return rec


def candidate_skills(spec):
    """"Python 11 E, model deployment 6 A" -> [{"name", "years", "level"}, ...]"""
    out = []
    for item in spec.split(","):
        words = item.split()
        name = " ".join(words[:-2])
        out.append({"name": name, "years": num(float(words[-2])),
                    "level": "SKILL_LEVEL_" + LEVELS[words[-1]]})
    return out


def profile(pid, headline, skills, years, level, edu, locations, relocate, remote,
            desired, etypes, titles, categories, industries=(), updated_at=None):
    rec = {"id": pid, "version": 1, "headline": headline,
           "skills": candidate_skills(skills), "years_experience": num(float(years)),
           "experience_level": "EXPERIENCE_LEVEL_" + level}
    if edu:
        rec["education"] = "EDUCATION_" + edu
    rec["locations"] = [loc(*l) for l in locations]
    rec["willing_to_relocate"] = relocate
    if remote:
        rec["remote"] = "REMOTE_POLICY_" + remote
    lo, cur, period = desired
    rec["desired_salary"] = {"min": lo, "currency": cur,
                             "period": "SALARY_PERIOD_" + period}
    rec["desired_employment_types"] = ["EMPLOYMENT_TYPE_" + t for t in etypes]
    goals = {"desired_titles": list(titles), "desired_categories": list(categories)}
    if industries:
        goals["desired_industries"] = list(industries)
    rec["career_goals"] = goals
    rec["updated_at"] = updated_at
    return rec


# --------------------------------------------------------------------------
# Postings
# --------------------------------------------------------------------------

# Frequently used places.
CHICAGO = ("Chicago", "Illinois", "US")
NYC = ("New York", "New York", "US")
LONDON = ("London", "England", "GB")
BERLIN = ("Berlin", "Berlin", "DE")
AMSTERDAM = ("Amsterdam", "North Holland", "NL")
TORONTO = ("Toronto", "Ontario", "CA")
SYDNEY = ("Sydney", "New South Wales", "AU")
SINGAPORE = ("Singapore", "", "SG")
BENGALURU = ("Bengaluru", "Karnataka", "IN")
SAO_PAULO = ("São Paulo", "São Paulo", "BR")
PARIS = ("Paris", "Île-de-France", "FR")
FRANKFURT = ("Frankfurt am Main", "Hesse", "DE")


def seed_posting():
    """The posting the product was first described with."""
    return posting(
        "job-dfs-sr-mgr-ml", "Senior Manager, Machine Learning",
        "Discover Financial Services",
        "Lead a team of machine learning engineers that builds, trains and deploys "
        "the models behind card, lending and payments products. Own the ML systems "
        "end to end, from data pipelines and distributed training to deployment and "
        "monitoring at fintech scale. Champion responsible and explainable AI so "
        "that every model decision can be understood, audited and defended.",
        "Machine Learning", "Financial Services", "Engineering",
        "FULL_TIME", "SENIOR", 8, "BACHELOR",
        [("Riverwoods", "Illinois", "US")], "HYBRID",
        (229000, 262000, "USD", "YEAR"),
        ["Python=2", "Scala", "Java", "AWS", "Azure", "Google Cloud Platform",
         "distributed computing=2", "ML systems=2", "model development=2",
         "model training", "model deployment=2", "hyperparameter tuning",
         "data pipelines", "CI/CD", "responsible AI=2", "explainable AI=2"],
        [group("Python, Scala or Java", ["Python", "Scala", "Java"]),
         group("distributed computing or ML systems",
               ["distributed computing", "ML systems"]),
         group("AWS, Azure or GCP", ["AWS", "Azure", "GCP"]),
         group("8+ years of experience", [], 8)],
        posted_at=BASE_TIME, expires_at=0)


def other_postings():
    """Every other posting; posted_at and expires_at are filled in later."""
    P = posting
    G = group
    return [
        # ---- data and machine learning, several close to the seed posting
        P("job-ml-eng-mgr-chicago", "Machine Learning Engineering Manager",
          "Lakeshore Payments",
          "Manage eight engineers who ship fraud and credit models for a payments "
          "network. Set the roadmap for the ML platform and keep models fair and "
          "explainable to regulators.",
          "Machine Learning", "Financial Services", "Engineering",
          "FULL_TIME", "LEAD", 7, "BACHELOR", [CHICAGO], "HYBRID",
          (210000, 250000, "USD", "YEAR"),
          ["Python=2", "Spark", "AWS", "ML systems=2", "model deployment=2", "MLOps",
           "Kubernetes", "explainable AI"],
          [G("Python or Scala", ["Python", "Scala"]),
           G("5+ years of experience", [], 5)]),
        P("job-ml-platform-lead-nyc", "Lead ML Platform Engineer", "Meridian Capital Tech",
          "Build the platform that trains and serves hundreds of models: feature "
          "store, distributed training on Kubernetes and low-latency serving.",
          "Machine Learning", "Financial Services", "Engineering",
          "FULL_TIME", "LEAD", 8, "BACHELOR", [NYC], "HYBRID",
          (200000, 240000, "USD", "YEAR"),
          ["Python=2", "Kubernetes=2", "Kubeflow", "model deployment",
           "distributed computing=2", "Google Cloud Platform", "Go"],
          [G("Kubernetes", ["Kubernetes"])]),
        P("job-sr-ml-eng-remote-us", "Senior Machine Learning Engineer", "Trellis Health AI",
          "Train and tune models that predict patient no-shows and readmissions. "
          "Fully remote within the United States.",
          "Machine Learning", "Healthcare", "Engineering",
          "FULL_TIME", "SENIOR", 5, "BACHELOR", [("", "", "US")], "REMOTE",
          (175000, 215000, "USD", "YEAR"),
          ["Python=2", "PyTorch=2", "model training=2", "hyperparameter tuning", "AWS",
           "Docker", "SQL"]),
        P("job-dir-applied-ai-hartford", "Director, Applied AI", "Charter Oak Mutual",
          "Direct the applied AI group for claims and underwriting. Own the model "
          "risk framework and the responsible AI review board.",
          "Machine Learning", "Insurance", "Engineering",
          "FULL_TIME", "DIRECTOR", 12, "MASTER", [("Hartford", "Connecticut", "US")],
          "HYBRID", (260000, 320000, "USD", "YEAR"),
          ["responsible AI=2", "explainable AI=2", "ML systems", "Python",
           "stakeholder management=2", "model risk management"],
          [G("10+ years of experience", [], 10)]),
        P("job-ds-credit-risk-wilmington", "Data Scientist, Credit Risk",
          "Brandywine Bank",
          "Develop and validate credit risk scorecards and explain them to model "
          "validation and the business.",
          "Data Science", "Financial Services", "Analytics",
          "FULL_TIME", "MID", 3, "MASTER", [("Wilmington", "Delaware", "US")], "HYBRID",
          (120000, 150000, "USD", "YEAR"),
          ["Python=2", "SQL=2", "scikit-learn", "statistics=2", "credit risk modeling",
           "explainable AI"],
          [G("Python or R", ["Python", "R"])]),
        P("job-sr-data-eng-streaming-austin", "Senior Data Engineer, Streaming",
          "Pecan Street Energy",
          "Design streaming pipelines that ingest smart-meter readings in real time "
          "and feed forecasting models.",
          "Data Engineering", "Energy", "Engineering",
          "FULL_TIME", "SENIOR", 6, "BACHELOR", [("Austin", "Texas", "US")], "HYBRID",
          (160000, 190000, "USD", "YEAR"),
          ["Kafka=2", "Spark=2", "Scala", "Airflow", "AWS", "data pipelines=2", "SQL"],
          [G("Scala or Java", ["Scala", "Java"])]),
        P("job-mlops-eng-toronto", "MLOps Engineer", "Maple Ledger",
          "Automate training, evaluation and deployment of models for a digital "
          "bank; own the CI/CD for ML.",
          "Machine Learning", "Financial Services", "Engineering",
          "FULL_TIME", "MID", 4, "BACHELOR", [TORONTO], "HYBRID",
          (130000, 155000, "CAD", "YEAR"),
          ["Kubernetes", "MLflow", "Python=2", "CI/CD=2", "model deployment=2", "Azure"]),
        P("job-ml-scientist-london", "Machine Learning Scientist", "Thamesbridge Labs",
          "Research and ship language models for document understanding in "
          "legal and financial workflows.",
          "Machine Learning", "Software", "Research",
          "FULL_TIME", "SENIOR", 4, "DOCTORATE", [LONDON], "HYBRID",
          (85000, 110000, "GBP", "YEAR"),
          ["PyTorch=2", "deep learning=2", "NLP=2", "Python", "model training"]),
        P("job-data-eng-berlin", "Data Engineer", "Spreewald Mobility",
          "Build the batch pipelines and the warehouse behind a ride-sharing "
          "marketplace.",
          "Data Engineering", "Transportation", "Engineering",
          "FULL_TIME", "MID", 3, "BACHELOR", [BERLIN], "HYBRID",
          (5500, 6800, "EUR", "MONTH"),
          ["Python", "SQL=2", "dbt=2", "Airflow", "BigQuery", "Google Cloud Platform"]),
        P("job-ds-intern-bengaluru", "Data Science Intern", "Cauvery Analytics",
          "Six-month internship analysing retail demand with Python and SQL, "
          "mentored by senior data scientists.",
          "Data Science", "Retail", "Analytics",
          "INTERNSHIP", "INTERN", 0, "", [BENGALURU], "ONSITE",
          (40000, 50000, "INR", "MONTH"),
          ["Python", "SQL", "pandas", "statistics"]),
        P("job-ml-eng-fraud-singapore", "Machine Learning Engineer, Fraud",
          "Straits Pay",
          "Build real-time fraud detection models for cross-border payments across "
          "Southeast Asia.",
          "Machine Learning", "Financial Services", "Engineering",
          "FULL_TIME", "MID", 4, "BACHELOR", [SINGAPORE], "HYBRID",
          (120000, 160000, "SGD", "YEAR"),
          ["Python=2", "fraud detection=2", "Spark", "model deployment", "AWS"]),
        P("job-analytics-eng-amsterdam", "Analytics Engineer", "Grachten Commerce",
          "Model the data of an online grocery in dbt and give every team trusted "
          "dashboards.",
          "Data Engineering", "Retail", "Analytics",
          "FULL_TIME", "ASSOCIATE", 2, "BACHELOR", [AMSTERDAM], "HYBRID",
          (4800, 6000, "EUR", "MONTH"),
          ["dbt=2", "SQL=2", "Snowflake", "Looker"]),
        P("job-head-of-ai-paris", "Head of AI", "Lutèce Assurances",
          "Set the AI strategy of an insurer and lead forty engineers and "
          "scientists; accountable for responsible AI and model governance.",
          "Machine Learning", "Insurance", "Engineering",
          "FULL_TIME", "EXECUTIVE", 15, "MASTER", [PARIS], "HYBRID",
          (150000, 190000, "EUR", "YEAR"),
          ["responsible AI=2", "ML systems=2", "leadership=2", "explainable AI",
           "Python"],
          [G("12+ years of experience", [], 12)]),
        P("job-ml-mgr-chicago-closed", "Manager, Machine Learning", "Prairie Lending",
          "Lead the team that builds underwriting models. This position has been "
          "filled.",
          "Machine Learning", "Financial Services", "Engineering",
          "FULL_TIME", "SENIOR", 8, "BACHELOR", [CHICAGO], "HYBRID",
          (215000, 245000, "USD", "YEAR"),
          ["Python=2", "Scala", "AWS", "ML systems=2", "model deployment"],
          status="CLOSED"),
        P("job-sr-ml-eng-recs-seattle", "Senior ML Engineer, Recommendations",
          "Cascade Outfitters",
          "Own the recommendation models of an outdoor retailer: candidate "
          "generation, ranking and online experiments.",
          "Machine Learning", "Retail", "Engineering",
          "FULL_TIME", "SENIOR", 6, "BACHELOR", [("Seattle", "Washington", "US")],
          "HYBRID", (180000, 220000, "USD", "YEAR"),
          ["Python=2", "TensorFlow", "recommender systems=2", "Spark", "AWS"]),
        # ---- software
        P("job-sr-backend-go-sf", "Senior Backend Engineer (Go)", "Fogline Systems",
          "Design and run the Go services behind a logistics API that handles "
          "millions of requests a day.",
          "Software Engineering", "Logistics", "Engineering",
          "FULL_TIME", "SENIOR", 5, "BACHELOR",
          [("San Francisco", "California", "US")], "HYBRID",
          (170000, 210000, "USD", "YEAR"),
          ["Go=2", "PostgreSQL", "gRPC", "Kubernetes", "Kafka"],
          [G("Go", ["Go"])]),
        P("job-backend-java-dublin", "Backend Engineer, Java", "Liffey Payments",
          "Build payment APIs in Java and Spring Boot on AWS.",
          "Software Engineering", "Financial Services", "Engineering",
          "FULL_TIME", "MID", 3, "BACHELOR", [("Dublin", "Leinster", "IE")], "HYBRID",
          (65000, 80000, "EUR", "YEAR"),
          ["Java=2", "Spring Boot=2", "PostgreSQL", "AWS"]),
        P("job-frontend-eng-remote", "Frontend Engineer", "Paperlantern",
          "Build the React front end of a collaborative writing tool. Work from "
          "anywhere.",
          "Software Engineering", "Software", "Engineering",
          "FULL_TIME", "MID", 3, "", [], "REMOTE",
          (120000, 150000, "USD", "YEAR"),
          ["React=2", "TypeScript=2", "CSS", "GraphQL"]),
        P("job-lead-frontend-london", "Lead Frontend Engineer", "Kingsway Media",
          "Lead the web team of a streaming service; own performance and "
          "accessibility.",
          "Software Engineering", "Media", "Engineering",
          "FULL_TIME", "LEAD", 7, "BACHELOR", [LONDON], "HYBRID",
          (90000, 105000, "GBP", "YEAR"),
          ["React=2", "TypeScript=2", "Next.js", "accessibility"]),
        P("job-sre-munich", "Site Reliability Engineer", "Isar Cloudworks",
          "Keep a multi-region Kubernetes platform fast and available; on-call one "
          "week in six.",
          "Site Reliability", "Software", "Engineering",
          "FULL_TIME", "SENIOR", 5, "BACHELOR", [("München", "Bavaria", "DE")],
          "HYBRID", (75000, 90000, "EUR", "YEAR"),
          ["Kubernetes=2", "Prometheus", "Terraform", "Go", "Linux=2"],
          [G("Kubernetes or Nomad", ["Kubernetes", "Nomad"])]),
        P("job-sre-london-closed", "Site Reliability Engineer", "Kingsway Media",
          "Run the video delivery platform. This position has been filled.",
          "Site Reliability", "Media", "Engineering",
          "FULL_TIME", "MID", 3, "BACHELOR", [LONDON], "HYBRID",
          (70000, 85000, "GBP", "YEAR"),
          ["Kubernetes", "AWS", "Linux", "Python"], status="CLOSED"),
        P("job-security-eng-dc", "Security Engineer", "Capitol Ridge Federal",
          "Detect and respond to threats across a cloud estate; run red-team "
          "exercises.",
          "Security", "Government", "Engineering",
          "FULL_TIME", "SENIOR", 5, "BACHELOR",
          [("Washington", "District of Columbia", "US")], "ONSITE",
          (150000, 180000, "USD", "YEAR"),
          ["penetration testing=2", "SIEM", "Python", "AWS", "incident response=2"],
          [G("incident response or penetration testing",
             ["incident response", "penetration testing"])]),
        P("job-rust-systems-amsterdam", "Systems Engineer (Rust)", "Dijk Networks",
          "Write the Rust data plane of a software-defined network.",
          "Software Engineering", "Telecommunications", "Engineering",
          "FULL_TIME", "SENIOR", 5, "BACHELOR", [AMSTERDAM], "REMOTE",
          (6000, 7500, "EUR", "MONTH"),
          ["Rust=2", "Linux", "networking=2", "C"],
          [G("Rust or C++", ["Rust", "C++"])]),
        P("job-ios-dev-sydney", "iOS Developer", "Harbourline Apps",
          "Build the iOS app of a banking startup in Swift and SwiftUI.",
          "Software Engineering", "Financial Services", "Engineering",
          "FULL_TIME", "MID", 3, "BACHELOR", [SYDNEY], "HYBRID",
          (140000, 165000, "AUD", "YEAR"),
          ["Swift=2", "SwiftUI", "iOS=2"]),
        P("job-fullstack-pune", "Full Stack Developer", "Sahyadri Software",
          "Build web applications for logistics customers with React and Node.js.",
          "Software Engineering", "Logistics", "Engineering",
          "FULL_TIME", "ASSOCIATE", 2, "BACHELOR", [("Pune", "Maharashtra", "IN")],
          "ONSITE", (1800000, 2400000, "INR", "YEAR"),
          ["JavaScript=2", "Node.js=2", "React", "MongoDB"]),
        P("job-qa-automation-toronto", "QA Automation Engineer (Contract)",
          "Northern Lights Software",
          "Six-month contract automating end-to-end tests of a retail platform.",
          "Quality Assurance", "Retail", "Engineering",
          "CONTRACT", "MID", 3, "", [TORONTO], "REMOTE",
          (65, 80, "CAD", "HOUR"),
          ["Selenium=2", "Python", "Cypress", "test automation=2"]),
        P("job-embedded-sw-lyon", "Embedded Software Engineer", "Rhône Instruments",
          "Develop firmware for industrial sensors in C and C++ on embedded Linux.",
          "Software Engineering", "Manufacturing", "Engineering",
          "FULL_TIME", "MID", 3, "MASTER", [("Lyon", "Auvergne-Rhône-Alpes", "FR")],
          "ONSITE", (50000, 62000, "EUR", "YEAR"),
          ["C=2", "C++", "embedded Linux=2", "RTOS"]),
        P("job-swe-intern-sao-paulo", "Software Engineering Intern", "Ipiranga Digital",
          "Internship for students in computer science: build internal tools in "
          "Python with a mentor.",
          "Software Engineering", "Software", "Engineering",
          "INTERNSHIP", "INTERN", 0, "HIGH_SCHOOL", [SAO_PAULO], "HYBRID",
          (3000, 4000, "BRL", "MONTH"),
          ["Python", "Git", "SQL"]),
        # ---- cloud and devops
        P("job-devops-eng-manchester", "DevOps Engineer", "Irwell Retail Group",
          "Own the AWS infrastructure as code and the deployment pipelines of an "
          "e-commerce business.",
          "DevOps", "Retail", "Engineering",
          "FULL_TIME", "MID", 3, "", [("Manchester", "England", "GB")], "HYBRID",
          (55000, 70000, "GBP", "YEAR"),
          ["Terraform=2", "AWS=2", "Docker", "CI/CD", "Ansible"]),
        P("job-cloud-architect-frankfurt", "Cloud Solutions Architect (Azure)",
          "Mainufer Consulting",
          "Design Azure landing zones and migrations for banks and insurers.",
          "Cloud", "Consulting", "Engineering",
          "FULL_TIME", "SENIOR", 7, "BACHELOR", [FRANKFURT], "HYBRID",
          (95000, 115000, "EUR", "YEAR"),
          ["Azure=2", "Terraform", "networking", "Kubernetes"],
          [G("Azure", ["Azure"])]),
        P("job-platform-eng-singapore", "Platform Engineer", "Merlion Logistics",
          "Build the internal developer platform on GCP and Kubernetes.",
          "DevOps", "Logistics", "Engineering",
          "FULL_TIME", "MID", 4, "BACHELOR", [SINGAPORE], "HYBRID",
          (9000, 12000, "SGD", "MONTH"),
          ["Kubernetes=2", "Go", "Terraform", "Google Cloud Platform=2"]),
        P("job-cloud-support-hyderabad", "Cloud Support Associate", "Charminar Cloud",
          "Help customers troubleshoot Linux servers and AWS networking; training "
          "provided.",
          "Cloud", "Software", "Support",
          "FULL_TIME", "ENTRY", 0, "BACHELOR", [("Hyderabad", "Telangana", "IN")],
          "ONSITE", (600000, 900000, "INR", "YEAR"),
          ["AWS", "Linux=2", "networking"]),
        # ---- finance
        P("job-fin-analyst-nyc", "Financial Analyst", "Hudson Yards Partners",
          "Build operating models and monthly reporting for a portfolio of "
          "companies.",
          "Finance", "Financial Services", "Finance",
          "FULL_TIME", "ASSOCIATE", 2, "BACHELOR", [NYC], "ONSITE",
          (85000, 105000, "USD", "YEAR"),
          ["Excel=2", "financial modeling=2", "SQL", "Tableau"]),
        P("job-accountant-leeds", "Accountant", "Aire Valley Foods",
          "Prepare management accounts and month-end close for a food manufacturer.",
          "Accounting", "Manufacturing", "Finance",
          "FULL_TIME", "MID", 3, "BACHELOR", [("Leeds", "England", "GB")], "HYBRID",
          (35000, 42000, "GBP", "YEAR"),
          ["Excel=2", "bookkeeping", "IFRS=2", "Xero"]),
        P("job-staff-accountant-calgary", "Staff Accountant", "Bow River Energy",
          "Own accounts payable and reconciliations for an energy services firm.",
          "Accounting", "Energy", "Finance",
          "FULL_TIME", "ENTRY", 1, "BACHELOR", [("Calgary", "Alberta", "CA")], "ONSITE",
          (60000, 72000, "CAD", "YEAR"),
          ["Excel", "accounts payable=2", "QuickBooks", "GAAP"]),
        P("job-fpa-mgr-frankfurt", "FP&A Manager", "Mainufer Industrie",
          "Lead planning, forecasting and variance analysis for a manufacturing "
          "group.",
          "Finance", "Manufacturing", "Finance",
          "FULL_TIME", "SENIOR", 6, "MASTER", [FRANKFURT], "HYBRID",
          (7000, 8500, "EUR", "MONTH"),
          ["financial modeling=2", "SAP", "Excel", "forecasting=2"]),
        # ---- healthcare
        P("job-rn-icu-houston", "Registered Nurse, ICU", "Bayou Medical Center",
          "Provide critical care to adult ICU patients on twelve-hour shifts.",
          "Nursing", "Healthcare", "Healthcare",
          "FULL_TIME", "MID", 2, "ASSOCIATE", [("Houston", "Texas", "US")], "ONSITE",
          (42, 58, "USD", "HOUR"),
          ["patient care=2", "critical care=2", "BLS", "ACLS"],
          [G("BLS certification", ["BLS"]), G("2+ years of experience", [], 2)]),
        P("job-rn-melbourne", "Registered Nurse", "Yarra Community Health",
          "Care for patients on a medical ward; graduate nurses welcome.",
          "Nursing", "Healthcare", "Healthcare",
          "FULL_TIME", "ENTRY", 0, "BACHELOR", [("Melbourne", "Victoria", "AU")],
          "ONSITE", (85000, 98000, "AUD", "YEAR"),
          ["patient care=2", "medication administration", "phlebotomy"]),
        P("job-medical-coder-remote", "Medical Coder", "Clearpath Revenue Cycle",
          "Assign ICD-10 and CPT codes to outpatient records. Remote within the "
          "United States.",
          "Medical Coding", "Healthcare", "Healthcare",
          "FULL_TIME", "ASSOCIATE", 1, "ASSOCIATE", [("", "", "US")], "REMOTE",
          (24, 32, "USD", "HOUR"),
          ["ICD-10 coding=2", "CPT coding", "medical terminology"],
          [G("ICD-10 coding", ["ICD-10 coding"])]),
        P("job-phlebotomist-birmingham", "Phlebotomist", "Edgbaston Clinics",
          "Take blood samples in outpatient clinics, three days a week.",
          "Nursing", "Healthcare", "Healthcare",
          "PART_TIME", "ENTRY", 0, "HIGH_SCHOOL", [("Birmingham", "England", "GB")],
          "ONSITE", (12, 14, "GBP", "HOUR"),
          ["phlebotomy=2", "patient care"]),
        # ---- sales and marketing
        P("job-account-exec-denver", "Account Executive, SaaS", "Front Range Software",
          "Sell a scheduling platform to mid-market companies; base salary plus "
          "commission.",
          "Sales", "Software", "Sales",
          "FULL_TIME", "MID", 3, "", [("Denver", "Colorado", "US")], "HYBRID",
          (80000, 95000, "USD", "YEAR"),
          ["Salesforce", "B2B sales=2", "negotiation", "CRM"]),
        P("job-digital-marketing-mgr-paris", "Digital Marketing Manager",
          "Maison Carrelet",
          "Lead search, paid and content marketing for a home goods brand.",
          "Marketing", "Retail", "Marketing",
          "FULL_TIME", "SENIOR", 5, "MASTER", [PARIS], "HYBRID",
          (55000, 68000, "EUR", "YEAR"),
          ["SEO=2", "Google Analytics", "content marketing", "Google Ads"]),
        P("job-sdr-sydney", "Sales Development Representative", "Harbourline Apps",
          "Book meetings for account executives through calls and email.",
          "Sales", "Software", "Sales",
          "FULL_TIME", "ENTRY", 0, "", [SYDNEY], "HYBRID",
          (65000, 75000, "AUD", "YEAR"),
          ["cold calling=2", "Salesforce", "HubSpot"]),
        P("job-growth-analyst-sao-paulo", "Growth Marketing Analyst", "Ipiranga Digital",
          "Measure acquisition funnels and run A/B tests for a fintech app.",
          "Marketing", "Financial Services", "Marketing",
          "FULL_TIME", "ASSOCIATE", 2, "BACHELOR", [SAO_PAULO], "HYBRID",
          (8000, 11000, "BRL", "MONTH"),
          ["SQL=2", "Google Analytics", "A/B testing=2"]),
        # ---- design
        P("job-ux-designer-amsterdam", "UX Designer", "Grachten Commerce",
          "Design the checkout and delivery experience of an online grocery.",
          "Design", "Retail", "Design",
          "FULL_TIME", "MID", 3, "BACHELOR", [AMSTERDAM], "HYBRID",
          (4200, 5400, "EUR", "MONTH"),
          ["Figma=2", "user research", "prototyping=2", "design systems"]),
        P("job-sr-product-designer-remote", "Senior Product Designer", "Paperlantern",
          "Own the end-to-end design of the editor and collaboration features.",
          "Design", "Software", "Design",
          "FULL_TIME", "SENIOR", 6, "", [("", "", "US")], "REMOTE",
          (140000, 170000, "USD", "YEAR"),
          ["Figma=2", "interaction design=2", "user research"]),
        P("job-ux-researcher-bengaluru", "UX Researcher", "Cauvery Analytics",
          "Plan and run usability studies and surveys for a retail analytics "
          "product.",
          "Design", "Retail", "Design",
          "FULL_TIME", "MID", 3, "MASTER", [BENGALURU], "HYBRID",
          (1500000, 2200000, "INR", "YEAR"),
          ["user research=2", "usability testing=2", "survey design"]),
        # ---- skilled trades
        P("job-electrician-phoenix", "Journeyman Electrician", "Saguaro Electric",
          "Install and repair commercial electrical systems on new-build sites.",
          "Electrical", "Construction", "Skilled Trades",
          "FULL_TIME", "MID", 4, "HIGH_SCHOOL", [("Phoenix", "Arizona", "US")],
          "ONSITE", (30, 40, "USD", "HOUR"),
          ["wiring=2", "conduit bending=2", "NEC", "blueprint reading"],
          [G("3+ years in the trade", [], 3)]),
        P("job-apprentice-electrician-bristol", "Apprentice Electrician",
          "Severn Building Services",
          "Learn domestic and commercial installation alongside qualified "
          "electricians; college day release included.",
          "Electrical", "Construction", "Skilled Trades",
          "FULL_TIME", "ENTRY", 0, "HIGH_SCHOOL", [("Bristol", "England", "GB")],
          "ONSITE", (9, 12, "GBP", "HOUR"),
          ["wiring", "hand tools"]),
        P("job-plumber-toronto", "Licensed Plumber", "Don Valley Mechanical",
          "Install and service plumbing in residential towers.",
          "Plumbing", "Construction", "Skilled Trades",
          "FULL_TIME", "MID", 4, "HIGH_SCHOOL", [TORONTO], "ONSITE",
          (38, 48, "CAD", "HOUR"),
          ["pipe fitting=2", "soldering", "drain cleaning", "blueprint reading"]),
        P("job-hvac-tech-atlanta", "HVAC Technician", "Peachtree Comfort",
          "Diagnose and repair heating and cooling systems for homes and small "
          "businesses.",
          "HVAC", "Construction", "Skilled Trades",
          "FULL_TIME", "MID", 2, "HIGH_SCHOOL", [("Atlanta", "Georgia", "US")],
          "ONSITE", (25, 36, "USD", "HOUR"),
          ["HVAC=2", "refrigeration", "EPA 608", "troubleshooting"],
          [G("EPA 608 certification", ["EPA 608"])]),
        P("job-welder-hamburg", "MIG/TIG Welder", "Elbe Stahlbau",
          "Weld steel structures for bridges and port equipment.",
          "Welding", "Manufacturing", "Skilled Trades",
          "FULL_TIME", "MID", 3, "NONE", [("Hamburg", "Hamburg", "DE")], "ONSITE",
          (3200, 3900, "EUR", "MONTH"),
          ["MIG welding=2", "TIG welding=2", "blueprint reading"]),
        P("job-welder-perth", "Welder (Fly-in Fly-out)", "Swan Resources",
          "Twelve-week temporary role welding plant at a remote mine site; travel "
          "and lodging provided.",
          "Welding", "Mining", "Skilled Trades",
          "TEMPORARY", "SENIOR", 5, "NONE", [("Perth", "Western Australia", "AU")],
          "ONSITE", (48, 58, "AUD", "HOUR"),
          ["MIG welding=2", "stick welding=2", "rigging"]),
    ]


# Postings whose expires_at is fixed: the one expired posting, and a few with
# a future deadline (days after BASE_TIME). All others never expire.
EXPIRES = {
    "job-sr-ml-eng-recs-seattle": PAST_EXPIRY,
    "job-ds-intern-bengaluru": BASE_TIME + 45 * DAY,
    "job-swe-intern-sao-paulo": BASE_TIME + 60 * DAY,
    "job-qa-automation-toronto": BASE_TIME + 30 * DAY,
    "job-welder-perth": BASE_TIME + 21 * DAY,
}


def build_postings(rng):
    out = [seed_posting()]
    for rec in other_postings():
        # Posted up to 60 days before the reference time, at any second.
        rec["posted_at"] = BASE_TIME - rng.below(60) * DAY - rng.below(DAY)
        rec["expires_at"] = EXPIRES.get(rec["id"], 0)
        # The expired posting was posted a month before it expired: ingest
        # rejects an expiry before the posting date.
        if rec["expires_at"] and rec["expires_at"] < rec["posted_at"]:
            rec["posted_at"] = rec["expires_at"] - 30 * DAY
        out.append(rec)
    return out


# --------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------

FT = ("FULL_TIME",)


def build_profiles(rng):
    R = profile
    recs = [
        # ---- strong fits for the seed posting
        R("cand-ml-lead-chicago",
          "ML engineering lead, 11 years building credit and payments models",
          "Python 11 E, Scala 6 A, Spark 7 A, AWS 8 A, ML systems 7 E, "
          "model deployment 6 A, model training 9 E, distributed computing 7 A, "
          "data pipelines 8 A, CI/CD 5 I, explainable AI 3 I",
          11, "LEAD", "MASTER", [CHICAGO], True, "HYBRID", (220000, "USD", "YEAR"), FT,
          ["Machine Learning Manager", "Senior Manager, Machine Learning",
           "Head of Machine Learning"], ["Machine Learning"], ["Financial Services"]),
        R("cand-ml-mgr-naperville",
          "Machine learning manager, 9 years in lending and risk",
          "Java 9 E, Python 7 A, Azure 5 A, distributed computing 6 A, "
          "ML systems 5 A, hyperparameter tuning 4 A, responsible AI 3 I, "
          "model development 6 A, team leadership 4 A",
          9, "SENIOR", "BACHELOR", [("Naperville", "Illinois", "US")], False, "HYBRID",
          (235000, "USD", "YEAR"), FT,
          ["Machine Learning Manager", "Engineering Manager, ML"],
          ["Machine Learning"], ["Financial Services", "Insurance"]),
        R("cand-ds-mgr-milwaukee",
          "Data science manager, 10 years, responsible AI in banking",
          "Python 10 E, Scala 3 I, AWS 6 A, model development 9 E, "
          "responsible AI 4 A, explainable AI 5 A, ML systems 4 A, SQL 10 E, "
          "stakeholder management 5 A",
          10, "SENIOR", "MASTER", [("Milwaukee", "Wisconsin", "US")], True, "HYBRID",
          (210000, "USD", "YEAR"), FT,
          ["Senior Manager, Machine Learning", "Director of Data Science"],
          ["Machine Learning", "Data Science"], ["Financial Services"]),
        R("cand-sr-ml-eng-austin",
          "Senior ML engineer, 8 years training and tuning deep models",
          "Python 8 E, PyTorch 5 A, AWS 6 A, model training 7 E, "
          "hyperparameter tuning 6 E, distributed computing 5 A, Docker 4 A, "
          "model deployment 4 A",
          8, "SENIOR", "BACHELOR", [("Austin", "Texas", "US")], True, None,
          (190000, "USD", "YEAR"), FT,
          ["Senior Machine Learning Engineer", "Machine Learning Manager"],
          ["Machine Learning"]),
        R("cand-ml-platform-remote-us",
          "ML platform engineer, 12 years, Kubernetes and model serving",
          "Python 12 E, Go 4 A, Google Cloud Platform 6 A, Kubernetes 7 E, "
          "model deployment 8 E, ML systems 8 E, distributed computing 9 E, CI/CD 8 A",
          12, "LEAD", "BACHELOR", [("", "", "US")], False, "REMOTE",
          (230000, "USD", "YEAR"), FT,
          ["Lead ML Platform Engineer", "Staff Machine Learning Engineer"],
          ["Machine Learning"]),
        R("cand-ai-director-toronto",
          "Applied AI director, 15 years, model governance and explainability",
          "Python 15 E, Java 8 A, Azure 6 A, ML systems 10 E, responsible AI 6 E, "
          "explainable AI 6 E, model development 12 E, leadership 8 E",
          15, "DIRECTOR", "DOCTORATE", [TORONTO], True, "HYBRID",
          (260000, "CAD", "YEAR"), FT,
          ["Director, Applied AI", "Head of AI", "Senior Manager, Machine Learning"],
          ["Machine Learning"], ["Financial Services", "Insurance"]),
        # ---- close to the seed posting, but fails its requirement groups
        R("cand-ml-junior-chicago",
          "Junior machine learning engineer, 3 years of Python analytics",
          "Python 3 I, SQL 3 I, pandas 3 I, scikit-learn 2 I, statistics 2 I",
          3, "ASSOCIATE", "BACHELOR", [CHICAGO], False, "HYBRID",
          (110000, "USD", "YEAR"), FT,
          ["Machine Learning Engineer"], ["Machine Learning"],
          ["Financial Services"]),
        # ---- data and machine learning elsewhere
        R("cand-ml-eng-london",
          "Machine learning engineer, 7 years in NLP and document AI",
          "Python 7 E, PyTorch 5 A, NLP 5 A, deep learning 5 A, model training 6 A, "
          "AWS 3 I",
          7, "SENIOR", "DOCTORATE", [LONDON], False, "HYBRID", (95000, "GBP", "YEAR"),
          FT, ["Machine Learning Scientist", "Senior Machine Learning Engineer"],
          ["Machine Learning"]),
        R("cand-ml-eng-bengaluru",
          "ML engineer, 5 years in fraud detection for payments",
          "Python 5 A, Spark 4 A, fraud detection 4 A, model deployment 3 I, "
          "AWS 3 I, SQL 5 A",
          5, "MID", "MASTER", [BENGALURU], True, "HYBRID", (3000000, "INR", "YEAR"),
          FT, ["Machine Learning Engineer"], ["Machine Learning"],
          ["Financial Services"]),
        R("cand-data-eng-berlin",
          "Data engineer, 4 years building warehouses with dbt and Airflow",
          "Python 4 A, SQL 6 E, dbt 3 A, Airflow 4 A, BigQuery 3 A, "
          "Google Cloud Platform 3 I",
          4, "MID", "BACHELOR", [BERLIN], False, "HYBRID", (5800, "EUR", "MONTH"), FT,
          ["Data Engineer", "Analytics Engineer"], ["Data Engineering"]),
        R("cand-data-sci-nyc",
          "Data scientist, 4 years in credit risk models",
          "Python 4 A, SQL 4 A, statistics 6 E, scikit-learn 4 A, "
          "credit risk modeling 3 A, R 3 I",
          4, "MID", "MASTER", [NYC, ("Wilmington", "Delaware", "US")], True, "HYBRID",
          (130000, "USD", "YEAR"), FT,
          ["Data Scientist", "Senior Data Scientist"], ["Data Science"],
          ["Financial Services"]),
        R("cand-analytics-eng-amsterdam",
          "Analytics engineer, 2 years of dbt and Snowflake",
          "dbt 2 A, SQL 3 A, Snowflake 2 I, Looker 2 I, Python 1 B",
          2, "ASSOCIATE", "BACHELOR", [AMSTERDAM], False, "HYBRID",
          (5000, "EUR", "MONTH"), FT, ["Analytics Engineer"], ["Data Engineering"]),
        R("cand-data-eng-streaming-austin",
          "Senior data engineer, 7 years of streaming pipelines",
          "Kafka 6 E, Spark 6 E, Scala 5 A, Java 7 A, Airflow 4 A, AWS 6 A, "
          "data pipelines 7 E, SQL 7 A",
          7, "SENIOR", "BACHELOR", [("Austin", "Texas", "US")], False, "HYBRID",
          (170000, "USD", "YEAR"), FT, ["Senior Data Engineer"], ["Data Engineering"],
          ["Energy"]),
        R("cand-ds-student-pune",
          "Statistics student seeking a data science internship",
          "Python 1 I, SQL 1 B, pandas 1 I, statistics 2 I",
          0, "INTERN", "HIGH_SCHOOL", [("Pune", "Maharashtra", "IN"), BENGALURU], True,
          "ONSITE", (35000, "INR", "MONTH"), ("INTERNSHIP",),
          ["Data Science Intern"], ["Data Science"]),
        R("cand-mlops-toronto",
          "MLOps engineer, 4 years automating model delivery",
          "Kubernetes 4 A, MLflow 3 A, Python 5 A, CI/CD 4 A, model deployment 3 A, "
          "Azure 3 I",
          4, "MID", "BACHELOR", [TORONTO], False, "REMOTE", (140000, "CAD", "YEAR"), FT,
          ["MLOps Engineer"], ["Machine Learning"]),
        # ---- software
        R("cand-backend-go-sf",
          "Backend engineer, 6 years of Go services and Kafka",
          "Go 6 E, PostgreSQL 6 A, gRPC 4 A, Kubernetes 4 A, Kafka 3 I",
          6, "SENIOR", "BACHELOR", [("San Francisco", "California", "US")], False,
          "HYBRID", (185000, "USD", "YEAR"), FT,
          ["Senior Backend Engineer", "Staff Engineer"], ["Software Engineering"]),
        R("cand-backend-java-dublin",
          "Java backend engineer, 3 years in payments",
          "Java 3 A, Spring Boot 3 A, PostgreSQL 2 I, AWS 2 I",
          3, "MID", "BACHELOR", [("Dublin", "Leinster", "IE")], False, "HYBRID",
          (70000, "EUR", "YEAR"), FT, ["Backend Engineer"], ["Software Engineering"],
          ["Financial Services"]),
        R("cand-frontend-remote",
          "Frontend engineer, 4 years of React and TypeScript",
          "React 4 E, TypeScript 4 A, CSS 5 A, GraphQL 2 I",
          4, "MID", "", [], False, "REMOTE", (125000, "USD", "YEAR"),
          ("FULL_TIME", "CONTRACT"), ["Frontend Engineer"], ["Software Engineering"]),
        R("cand-frontend-lead-london",
          "Frontend lead, 8 years, web performance and accessibility",
          "React 7 E, TypeScript 6 E, Next.js 3 A, accessibility 5 A, CSS 8 E",
          8, "LEAD", "BACHELOR", [LONDON], False, "HYBRID", (100000, "GBP", "YEAR"), FT,
          ["Lead Frontend Engineer", "Engineering Manager"], ["Software Engineering"]),
        R("cand-sre-munich",
          "Site reliability engineer, 6 years running Kubernetes at scale",
          "Kubernetes 5 E, Prometheus 5 A, Terraform 4 A, Go 3 I, Linux 8 E",
          6, "SENIOR", "BACHELOR", [("München", "Bavaria", "DE")], False, "HYBRID",
          (82000, "EUR", "YEAR"), FT, ["Site Reliability Engineer"],
          ["Site Reliability", "DevOps"]),
        R("cand-security-dc",
          "Security engineer, 7 years in detection and incident response",
          "incident response 6 E, SIEM 5 A, penetration testing 4 A, Python 5 A, "
          "AWS 3 I",
          7, "SENIOR", "BACHELOR", [("Washington", "District of Columbia", "US")],
          False, "ONSITE", (160000, "USD", "YEAR"), FT, ["Security Engineer"],
          ["Security"], ["Government"]),
        R("cand-rust-eng-utrecht",
          "Systems engineer, 6 years of Rust and C networking code",
          "Rust 4 E, C 6 E, Linux 6 E, networking 5 A",
          6, "SENIOR", "MASTER", [("Utrecht", "Utrecht", "NL")], False, "REMOTE",
          (6500, "EUR", "MONTH"), FT, ["Systems Engineer"], ["Software Engineering"]),
        R("cand-ios-dev-sydney",
          "iOS developer, 3 years of Swift and SwiftUI",
          "Swift 3 A, SwiftUI 2 A, iOS 3 A",
          3, "MID", "BACHELOR", [SYDNEY], False, "HYBRID", (145000, "AUD", "YEAR"), FT,
          ["iOS Developer", "Mobile Engineer"], ["Software Engineering"]),
        R("cand-fullstack-pune",
          "Full stack developer, 2 years of React and Node.js",
          "JavaScript 2 A, Node.js 2 A, React 2 I, MongoDB 1 I",
          2, "ASSOCIATE", "BACHELOR", [("Pune", "Maharashtra", "IN")], False, "ONSITE",
          (1900000, "INR", "YEAR"), FT, ["Full Stack Developer"],
          ["Software Engineering"]),
        R("cand-qa-contractor-toronto",
          "QA automation contractor, 5 years of Selenium and Cypress",
          "Selenium 5 E, Cypress 3 A, Python 4 A, test automation 5 E",
          5, "MID", "ASSOCIATE", [TORONTO], False, "REMOTE", (70, "CAD", "HOUR"),
          ("CONTRACT", "TEMPORARY"), ["QA Automation Engineer"],
          ["Quality Assurance"]),
        R("cand-embedded-lyon",
          "Embedded engineer, 4 years of firmware in C and C++",
          "C 4 E, C++ 4 A, embedded Linux 3 A, RTOS 3 A",
          4, "MID", "MASTER", [("Lyon", "Auvergne-Rhône-Alpes", "FR")], True, "ONSITE",
          (55000, "EUR", "YEAR"), FT, ["Embedded Software Engineer"],
          ["Software Engineering"], ["Manufacturing"]),
        R("cand-swe-student-sao-paulo",
          "Computer science student seeking a software internship",
          "Python 1 I, Git 1 I, SQL 1 B, JavaScript 1 B",
          0, "INTERN", "HIGH_SCHOOL", [SAO_PAULO], False, "HYBRID",
          (3000, "BRL", "MONTH"), ("INTERNSHIP", "PART_TIME"),
          ["Software Engineering Intern"], ["Software Engineering"]),
        # ---- cloud and devops
        R("cand-devops-manchester",
          "DevOps engineer, 4 years of AWS and Terraform",
          "Terraform 4 A, AWS 4 A, Docker 4 A, CI/CD 4 A, Ansible 2 I",
          4, "MID", "", [("Manchester", "England", "GB"), ("Leeds", "England", "GB")],
          False, "HYBRID", (60000, "GBP", "YEAR"), FT, ["DevOps Engineer"],
          ["DevOps"]),
        R("cand-cloud-architect-frankfurt",
          "Cloud architect, 9 years designing Azure platforms",
          "Azure 7 E, Terraform 5 A, networking 9 E, Kubernetes 3 I",
          9, "SENIOR", "MASTER", [FRANKFURT], False, "HYBRID",
          (105000, "EUR", "YEAR"), FT, ["Cloud Solutions Architect"], ["Cloud"]),
        R("cand-platform-eng-singapore",
          "Platform engineer, 5 years on GCP and Kubernetes",
          "Kubernetes 5 A, Go 3 A, Terraform 4 A, Google Cloud Platform 5 A",
          5, "MID", "BACHELOR", [SINGAPORE], False, "HYBRID", (10000, "SGD", "MONTH"),
          FT, ["Platform Engineer"], ["DevOps"]),
        # ---- finance
        R("cand-fin-analyst-nyc",
          "Financial analyst, 2 years of operating models and reporting",
          "Excel 4 E, financial modeling 2 A, SQL 1 I, Tableau 1 I",
          2, "ASSOCIATE", "BACHELOR", [NYC], False, "ONSITE", (90000, "USD", "YEAR"),
          FT, ["Financial Analyst"], ["Finance"], ["Financial Services"]),
        R("cand-accountant-leeds",
          "Accountant, 4 years of management accounts in manufacturing",
          "Excel 6 E, bookkeeping 4 A, IFRS 4 A, Xero 3 A",
          4, "MID", "BACHELOR", [("Leeds", "England", "GB")], False, "HYBRID",
          (38000, "GBP", "YEAR"), ("FULL_TIME", "PART_TIME"), ["Accountant"],
          ["Accounting"]),
        R("cand-accountant-calgary",
          "Staff accountant, 1 year in accounts payable",
          "Excel 2 A, accounts payable 1 I, QuickBooks 1 I, GAAP 1 I",
          1, "ENTRY", "BACHELOR", [("Calgary", "Alberta", "CA")], False, "ONSITE",
          (62000, "CAD", "YEAR"), FT, ["Staff Accountant"], ["Accounting"]),
        R("cand-fpa-frankfurt",
          "FP&A lead, 7 years of planning and forecasting",
          "financial modeling 7 E, SAP 5 A, Excel 10 E, forecasting 7 E",
          7, "SENIOR", "MASTER", [FRANKFURT], False, "HYBRID", (8000, "EUR", "MONTH"),
          FT, ["FP&A Manager"], ["Finance"]),
        # ---- healthcare
        R("cand-rn-icu-houston",
          "ICU registered nurse, 5 years of critical care",
          "patient care 5 E, critical care 5 E, BLS 5 E, ACLS 4 A",
          5, "MID", "ASSOCIATE", [("Houston", "Texas", "US")], False, "ONSITE",
          (48, "USD", "HOUR"), ("FULL_TIME", "PART_TIME"),
          ["Registered Nurse, ICU", "Charge Nurse"], ["Nursing"], ["Healthcare"]),
        R("cand-rn-melbourne",
          "Registered nurse, 1 year on a medical ward",
          "patient care 1 I, medication administration 1 I, phlebotomy 1 B",
          1, "ENTRY", "BACHELOR", [("Melbourne", "Victoria", "AU")], True, "ONSITE",
          (88000, "AUD", "YEAR"), FT, ["Registered Nurse"], ["Nursing"],
          ["Healthcare"]),
        R("cand-medical-coder-remote",
          "Certified medical coder, 3 years of outpatient coding",
          "ICD-10 coding 3 A, CPT coding 3 A, medical terminology 4 A",
          3, "ASSOCIATE", "ASSOCIATE", [("", "", "US")], False, "REMOTE",
          (26, "USD", "HOUR"), ("FULL_TIME", "PART_TIME"), ["Medical Coder"],
          ["Medical Coding"], ["Healthcare"]),
        R("cand-phlebotomist-birmingham",
          "Phlebotomist, 2 years in outpatient clinics",
          "phlebotomy 2 A, patient care 2 I",
          2, "ENTRY", "HIGH_SCHOOL", [("Birmingham", "England", "GB")], False, "ONSITE",
          (12, "GBP", "HOUR"), ("PART_TIME",), ["Phlebotomist"], ["Nursing"]),
        # ---- sales and marketing
        R("cand-account-exec-denver",
          "SaaS account executive, 4 years selling to mid-market",
          "B2B sales 4 A, Salesforce 4 A, negotiation 4 A, CRM 4 A",
          4, "MID", "BACHELOR", [("Denver", "Colorado", "US")], False, "HYBRID",
          (85000, "USD", "YEAR"), FT, ["Account Executive"], ["Sales"]),
        R("cand-marketing-paris",
          "Digital marketing manager, 6 years in search and content",
          "SEO 6 E, Google Analytics 6 A, content marketing 5 A, Google Ads 4 A",
          6, "SENIOR", "MASTER", [PARIS], False, "HYBRID", (60000, "EUR", "YEAR"), FT,
          ["Digital Marketing Manager", "Head of Marketing"], ["Marketing"]),
        R("cand-sdr-sydney",
          "Sales development representative, 1 year in software",
          "cold calling 1 A, Salesforce 1 I, HubSpot 1 I",
          1, "ENTRY", "", [SYDNEY], False, "HYBRID", (68000, "AUD", "YEAR"), FT,
          ["Sales Development Representative", "Account Executive"], ["Sales"]),
        R("cand-growth-sao-paulo",
          "Growth analyst, 2 years of funnels and A/B tests",
          "SQL 2 A, Google Analytics 2 A, A/B testing 2 A, Python 1 B",
          2, "ASSOCIATE", "BACHELOR", [SAO_PAULO], False, "HYBRID",
          (9000, "BRL", "MONTH"), FT, ["Growth Marketing Analyst"], ["Marketing"]),
        # ---- design
        R("cand-ux-designer-amsterdam",
          "UX designer, 4 years in e-commerce",
          "Figma 4 E, user research 3 A, prototyping 4 A, design systems 2 I",
          4, "MID", "BACHELOR", [AMSTERDAM], False, "HYBRID", (4800, "EUR", "MONTH"),
          FT, ["UX Designer", "Product Designer"], ["Design"]),
        R("cand-product-designer-remote",
          "Senior product designer, 7 years designing collaborative tools",
          "Figma 6 E, interaction design 7 E, user research 5 A, prototyping 7 E",
          7, "SENIOR", "", [("", "", "US")], False, "REMOTE",
          (150000, "USD", "YEAR"), ("FULL_TIME", "CONTRACT"),
          ["Senior Product Designer"], ["Design"]),
        R("cand-ux-researcher-bengaluru",
          "UX researcher, 3 years of usability studies",
          "user research 3 A, usability testing 3 A, survey design 2 I",
          3, "MID", "MASTER", [BENGALURU], False, "HYBRID", (1800000, "INR", "YEAR"),
          FT, ["UX Researcher"], ["Design"]),
        # ---- skilled trades
        R("cand-electrician-phoenix",
          "Journeyman electrician, 6 years of commercial installs",
          "wiring 6 E, conduit bending 6 E, NEC 5 A, blueprint reading 5 A",
          6, "MID", "HIGH_SCHOOL", [("Phoenix", "Arizona", "US")], False, "ONSITE",
          (34, "USD", "HOUR"), FT, ["Journeyman Electrician", "Master Electrician"],
          ["Electrical"], ["Construction"]),
        R("cand-apprentice-electrician-bristol",
          "Electrical apprentice, first year of training",
          "wiring 1 B, hand tools 1 I",
          0, "ENTRY", "HIGH_SCHOOL", [("Bristol", "England", "GB")], False, "ONSITE",
          (9, "GBP", "HOUR"), FT, ["Apprentice Electrician"], ["Electrical"]),
        R("cand-plumber-toronto",
          "Licensed plumber, 8 years in residential and commercial buildings",
          "pipe fitting 8 E, soldering 8 E, drain cleaning 6 A, blueprint reading 5 A",
          8, "SENIOR", "HIGH_SCHOOL", [TORONTO], False, "ONSITE", (42, "CAD", "HOUR"),
          ("FULL_TIME", "CONTRACT"), ["Licensed Plumber"], ["Plumbing"]),
        R("cand-hvac-tech-atlanta",
          "HVAC technician, 3 years of residential service",
          "HVAC 3 A, refrigeration 3 A, EPA 608 3 A, troubleshooting 3 A",
          3, "MID", "HIGH_SCHOOL", [("Atlanta", "Georgia", "US")], True, "ONSITE",
          (28, "USD", "HOUR"), FT, ["HVAC Technician"], ["HVAC"]),
        R("cand-welder-hamburg",
          "Welder, 5 years of MIG and TIG on steel structures",
          "MIG welding 5 E, TIG welding 4 A, blueprint reading 3 I",
          5, "MID", "NONE", [("Hamburg", "Hamburg", "DE")], False, "ONSITE",
          (3400, "EUR", "MONTH"), FT, ["Welder"], ["Welding"]),
        R("cand-welder-perth",
          "Welder, 9 years on mine and plant sites, fly-in fly-out",
          "MIG welding 9 E, stick welding 9 E, rigging 4 A",
          9, "SENIOR", "NONE", [("Perth", "Western Australia", "AU")], True, "ONSITE",
          (52, "AUD", "HOUR"), ("TEMPORARY", "CONTRACT", "FULL_TIME"), ["Welder"],
          ["Welding"], ["Mining"]),
    ]
    for rec in recs:
        rec["updated_at"] = BASE_TIME - rng.below(90) * DAY - rng.below(DAY)
    return recs


# --------------------------------------------------------------------------
# Invalid records: each breaks exactly one rule of the codec or of ingest.
# --------------------------------------------------------------------------

def build_invalid(postings, profiles):
    base_p = next(p for p in postings if p["id"] == "job-backend-java-dublin")
    base_c = next(c for c in profiles if c["id"] == "cand-backend-java-dublin")
    out = []

    def bad_posting(expect, new_id, edit):
        rec = copy.deepcopy(base_p)
        if new_id is not None:
            rec["id"] = new_id
        edit(rec)
        out.append({"topic": "postings", "expect": expect, "record": rec})

    def bad_profile(expect, new_id, edit):
        rec = copy.deepcopy(base_c)
        if new_id is not None:
            rec["id"] = new_id
        edit(rec)
        out.append({"topic": "profiles", "expect": expect, "record": rec})

    bad_posting("missing id", None, lambda r: r.pop("id"))
    bad_posting("missing title", "job-invalid-no-title", lambda r: r.pop("title"))
    bad_posting("salary range", "job-invalid-salary-range",
                lambda r: r["salary"].update({"min": 90000, "max": 60000}))
    bad_posting("unknown currency", "job-invalid-currency",
                lambda r: r["salary"].update({"currency": "XYZ"}))
    bad_posting("bad country", "job-invalid-country",
                lambda r: r["locations"][0].update({"country": "USA"}))
    bad_posting("unknown enum", "job-invalid-enum",
                lambda r: r.update({"employment_type": "EMPLOYMENT_TYPE_GIG"}))
    bad_posting("unknown field", "job-invalid-field",
                lambda r: r.update({"remote_ok": True}))
    bad_posting("wrong type", "job-invalid-type",
                lambda r: r.update({"min_years_experience": "three"}))
    out.append({"topic": "postings", "expect": "json", "raw": "{not json"})
    bad_profile("missing id", None, lambda r: r.pop("id"))
    bad_profile("bad id", "cand invalid/id", lambda r: None)
    bad_profile("unknown currency", "cand-invalid-currency",
                lambda r: r["desired_salary"].update({"currency": "XYZ"}))
    bad_profile("unknown enum", "cand-invalid-enum",
                lambda r: r.update({"remote": "REMOTE_POLICY_ANYWHERE"}))
    bad_profile("unknown field", "cand-invalid-field",
                lambda r: r.update({"salary_expectation": 70000}))
    bad_profile("wrong type", "cand-invalid-type",
                lambda r: r.update({"years_experience": "three"}))
    return out


# --------------------------------------------------------------------------
# Checks and output
# --------------------------------------------------------------------------

# Keys that must never appear in a record: personal or protected attributes.
FORBIDDEN_KEYS = {"name", "full_name", "first_name", "last_name", "email", "phone",
                  "age", "date_of_birth", "birth_date", "gender", "sex", "race",
                  "ethnicity", "nationality", "religion", "marital_status",
                  "disability", "photo", "photo_url"}
INGEST_FILLED = {"skill_id", "skill_ids", "annual_min", "annual_max", "rates_version"}


def walk_keys(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from walk_keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk_keys(v)


def check_records(recs, kind):
    """Fails loudly if a valid record breaks a rule the data set promises."""
    seen = set()
    for r in recs:
        rid = r["id"]
        assert ID_RE.match(rid) and rid.startswith(kind + "-"), rid
        assert rid not in seen, "duplicate id " + rid
        seen.add(rid)
        assert r["version"] == 1, rid
        keys = set(walk_keys(r))
        # "name" is allowed as the name of a skill only.
        assert not (keys & (FORBIDDEN_KEYS - {"name"})), rid
        assert not (keys & INGEST_FILLED), rid
        sal = r.get("salary") or r.get("desired_salary")
        assert sal["currency"] in CURRENCIES, rid
        assert sal["min"] >= 0 and sal.get("max", sal["min"]) >= sal["min"], rid
        for l in r["locations"]:
            assert l["country"] in COUNTRIES, rid
        names = [s["name"] for s in r["skills"]]
        assert len(names) == len(set(names)), "duplicate skill in " + rid


def dump(rec):
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False) + "\n"


def generate():
    """Returns {file name: bytes} for the three files."""
    rng = Rng(SEED)
    postings = build_postings(rng)
    profiles = build_profiles(rng)
    check_records(postings, "job")
    check_records(profiles, "cand")
    invalid = build_invalid(postings, profiles)
    return {
        "postings.jsonl": "".join(dump(r) for r in postings).encode("utf-8"),
        "profiles.jsonl": "".join(dump(r) for r in profiles).encode("utf-8"),
        "invalid.jsonl": "".join(dump(r) for r in invalid).encode("utf-8"),
    }


def skill_names(files):
    """Every distinct skill name the valid records use, for the taxonomy."""
    names = set()
    for fname in ("postings.jsonl", "profiles.jsonl"):
        for line in files[fname].decode("utf-8").splitlines():
            rec = json.loads(line)
            names.update(s["name"] for s in rec["skills"])
            for g in rec.get("requirement_groups", []):
                names.update(g["skills"])
    return sorted(names, key=lambda s: (s.lower(), s))


def main(argv):
    ap = argparse.ArgumentParser(
        description="Write the lunamatch sample data: postings.jsonl, "
                    "profiles.jsonl and invalid.jsonl (deterministic).")
    ap.add_argument("--out", default="data/samples", metavar="DIR",
                    help="directory to write the files into (default: %(default)s)")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if the files in DIR differ from "
                         "what would be generated")
    ap.add_argument("--list-skills", action="store_true",
                    help="write nothing; print every skill name used, one per line")
    args = ap.parse_args(argv)

    files = generate()
    if args.list_skills:
        sys.stdout.write("".join(n + "\n" for n in skill_names(files)))
        return 0
    if args.check:
        stale = []
        for fname in FILES:
            path = os.path.join(args.out, fname)
            try:
                with open(path, "rb") as f:
                    same = f.read() == files[fname]
            except OSError:
                same = False
            if not same:
                stale.append(path)
        for path in stale:
            print("gen_samples: %s is not what the generator writes" % path,
                  file=sys.stderr)
        return 1 if stale else 0

    os.makedirs(args.out, exist_ok=True)
    for fname in FILES:
        path = os.path.join(args.out, fname)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(files[fname])
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
