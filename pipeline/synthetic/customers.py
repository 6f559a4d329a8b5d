"""Customers: public columns plus hidden traits (taste clusters, age segment, activity,
channel habit).

Tastes are clusters over departments, colours and patterns; which cluster a customer
belongs to depends on age. But only a fifth of fresh draws follow the cluster
(``Behaviour.taste_share``): the rest follow what the customer's age segment leans to
(young shoppers to Divided, parents to Baby/Children, ...) and that segment's trend bursts.
So taste is noisy and only weakly personal, and age-band popularity beats global
popularity a little.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.synthetic.catalogue import Catalogue
from pipeline.synthetic.vocab_data import APPEARANCES, COLOURS, DEPARTMENTS

CUSTOMER_COLUMNS = ["customer_id", "FN", "Active", "club_member_status", "fashion_news_frequency", "age", "postal_code"]
# Age centre and share of each index group's taste clusters; a cluster's audience is centred there.
INDEX_GROUP_AUDIENCE = {
    "Divided": (21, 0.30),
    "Ladieswear": (45, 0.40),
    "Menswear": (35, 0.12),
    "Baby/Children": (34, 0.10),
    "Sport": (28, 0.08),
}


# Gamma shapes of a cluster's weights over departments, colours and patterns: smaller = pickier.
TASTE_SHAPES = (0.5, 1.0, 1.0)
AGE_SPREAD = 6.0  # years: how strongly age decides the taste cluster
OUTSIDE_TASTE = 0.1  # weight of departments outside the cluster's index group
# Age segments (upper bounds; catalogue.N_AGE_SEGMENTS of them): what everyone of an age
# leans to, the part of taste that age explains. Lift of each index group per segment, in
# INDEX_GROUPS order (Baby/Children, Divided, Ladieswear, Menswear, Sport).
AGE_SEGMENTS = (25, 35, 50)
SEGMENT_LIFT = (
    (0.5, 2.2, 0.8, 1.0, 1.2),
    (1.6, 1.0, 1.0, 1.1, 1.2),
    (1.6, 0.6, 1.3, 1.1, 0.9),
    (0.8, 0.4, 1.6, 0.9, 0.8),
)
SEGMENT_DEPT_NOISE = 0.8  # lognormal sigma of a segment's extra lift per department


@dataclass
class Customers:
    frame: pd.DataFrame
    age: np.ndarray  # float, NaN when unknown
    primary: np.ndarray  # main taste cluster
    secondary: np.ndarray  # second taste cluster
    online: np.ndarray  # probability a basket is bought online
    activity: np.ndarray  # relative number of shopping days
    fan: np.ndarray  # FN == 1 (reads fashion news, shops more)
    segment: np.ndarray  # age segment (unknown age: the 25-34 one)


@dataclass
class Tastes:
    affinity: np.ndarray  # (n_clusters, n_articles) relative preference
    centre_age: np.ndarray  # (n_clusters,)
    segment_affinity: np.ndarray  # (N_AGE_SEGMENTS, n_articles) what each age segment leans to


def hex_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct 64-hex strings (like the data set's hashed ids)."""
    lut = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    return lut[raw].view("S64").ravel().astype(str)


def build_tastes(rng: np.random.Generator, catalogue: Catalogue, n_clusters: int) -> Tastes:
    groups = list(INDEX_GROUP_AUDIENCE)
    shares = np.array([INDEX_GROUP_AUDIENCE[g][1] for g in groups])
    cluster_group = np.array(
        [groups[i] for i in rng.choice(len(groups), size=n_clusters, p=shares / shares.sum())], dtype=object
    )
    cluster_group[: min(n_clusters, len(groups))] = groups[: min(n_clusters, len(groups))]
    centre = np.array([INDEX_GROUP_AUDIENCE[g][0] for g in cluster_group], dtype=float)
    centre += rng.normal(0, 6, n_clusters)
    dept_group = np.array([d[5] for d in DEPARTMENTS])
    # Sparse department tastes: strong on a few departments of the cluster's index group.
    dept_w = rng.gamma(TASTE_SHAPES[0], 1.0, size=(n_clusters, len(DEPARTMENTS)))
    own = dept_group[None, :] == cluster_group[:, None]
    dept_w = np.where(own, dept_w + 0.05, OUTSIDE_TASTE * dept_w)
    colour_w = rng.gamma(TASTE_SHAPES[1], 1.0, size=(n_clusters, len(COLOURS))) + 0.05
    app_w = rng.gamma(TASTE_SHAPES[2], 1.0, size=(n_clusters, len(APPEARANCES))) + 0.1
    affinity = dept_w[:, catalogue.dept] * colour_w[:, catalogue.colour] * app_w[:, catalogue.appearance]
    affinity /= affinity.mean(axis=1, keepdims=True)
    lift = np.array(SEGMENT_LIFT)[:, catalogue.index_group]
    noise = rng.lognormal(0.0, SEGMENT_DEPT_NOISE, size=(len(SEGMENT_LIFT), len(DEPARTMENTS)))
    segment_affinity = lift * noise[:, catalogue.dept]
    segment_affinity /= segment_affinity.mean(axis=1, keepdims=True)
    return Tastes(affinity.astype(np.float32), centre, segment_affinity.astype(np.float32))


def _ages(rng: np.random.Generator, n: int) -> np.ndarray:
    # Two peaks (early 20s and about 50), as in the real customer file.
    comp = rng.choice(3, size=n, p=[0.45, 0.2, 0.35])
    mean = np.array([23.0, 33.0, 51.0])[comp]
    sd = np.array([2.8, 4.5, 7.5])[comp]
    age = np.clip(np.round(rng.normal(mean, sd)), 16, 99)
    age[rng.random(n) < 0.01] = np.nan
    return age


def build_customers(rng: np.random.Generator, n: int, tastes: Tastes) -> Customers:
    ids = np.sort(hex_ids(rng, n))  # the real customers.csv is sorted by id
    age = _ages(rng, n)
    known_age = np.where(np.isnan(age), 32.0, age)
    # Cluster membership: prior share x closeness of the customer's age to the cluster's audience.
    logits = -((known_age[:, None] - tastes.centre_age[None, :]) ** 2) / (2 * AGE_SPREAD**2)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    primary = (cdf < rng.random((n, 1))).sum(axis=1).clip(0, len(tastes.centre_age) - 1)
    secondary = (cdf < rng.random((n, 1))).sum(axis=1).clip(0, len(tastes.centre_age) - 1)

    fan = rng.random(n) < 0.33
    active = fan & (rng.random(n) < 0.96)
    status = rng.choice(
        np.array(["ACTIVE", "PRE-CREATE", "LEFT CLUB", ""], dtype=object), size=n, p=[0.9147, 0.08, 0.0003, 0.005]
    )
    news = np.where(fan, "Regularly", "NONE").astype(object)
    news[rng.random(n) < 0.001] = "Monthly"
    news[rng.random(n) < 0.005] = ""
    postal_pool = hex_ids(rng, max(1, n // 3))
    postal = postal_pool[np.minimum(rng.zipf(1.3, size=n) - 1, len(postal_pool) - 1)]
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "FN": np.where(fan, "1.0", ""),
            "Active": np.where(active, "1.0", ""),
            "club_member_status": status,
            "fashion_news_frequency": news,
            "age": np.where(np.isnan(age), "", np.nan_to_num(age).astype(np.int64).astype(str)),
            "postal_code": postal,
        },
        columns=CUSTOMER_COLUMNS,
    )
    online = rng.beta(0.9, 0.37, size=n)
    activity = rng.lognormal(0.0, 1.0, n) * np.where(fan, 1.5, 1.0) * np.where(status == "PRE-CREATE", 0.6, 1.0)
    segment = np.searchsorted(np.array(AGE_SEGMENTS), known_age, side="right")
    return Customers(frame, age, primary, secondary, online, activity, fan, segment)
