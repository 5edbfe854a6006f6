"""Situation hints for the generation prompt: one per requested text, drawn per request.

A small teacher asked again and again for "new hard texts" about the same weakness writes the same
few texts (Qwen2.5-Coder-1.5B on the emotion set: 3 of 4 texts of round 2 were duplicates of
round 1's). Conditioning each text on a different attribute is the usual remedy for generated
training data (AttrPrompt, Yu et al. 2023): here, an everyday situation the text is set in. The
draw is seeded by the request's seed, so a redone round sends the same prompt (and the cache
answers it).
"""

import random
from typing import List

SITUATIONS = (
    "at work",
    "shopping online",
    "a family gathering",
    "a trip abroad",
    "a sports match",
    "bad weather",
    "a new phone or laptop",
    "school or university",
    "a restaurant",
    "a doctor's visit",
    "moving house",
    "a parcel delivery",
    "paying bills",
    "a message from a friend",
    "a holiday",
    "public transport",
    "the news",
    "a hobby",
    "a pet",
    "a concert or a film",
    "a job interview",
    "cooking at home",
    "something that broke",
    "a neighbour",
    "a wedding",
    "an exam",
    "a business meeting",
    "an election",
    "a science story",
    "a city festival",
    "a hospital",
    "a small company",
    "a video game",
    "social media",
    "a car",
    "an airport",
    "a bank",
    "a hotel",
    "a present",
    "a sale or discount",
    "a phone call",
    "a team project",
    "travelling with children",
    "a birthday",
    "a tournament",
    "a book",
    "a night shift",
    "a subscription",
    "a charity event",
    "a museum",
)


def situations(n: int, seed: int) -> List[str]:
    """``n`` different situations (repeating only when ``n`` exceeds the list), the same for the
    same seed."""
    rng = random.Random(seed)
    out: List[str] = []
    while len(out) < n:
        out += rng.sample(SITUATIONS, min(n - len(out), len(SITUATIONS)))
    return out
