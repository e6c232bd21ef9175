"""Generate the demo dataset shipped in src/clfbench/demo_data (support tickets, 5 intents).

Written from scratch for clfbench (no external data). Tickets are composed from many
phrasings per intent, with shared vocabulary across intents (money words in refund and
billing tickets, parcels in delivery and returns tickets), typos and varied length. Over half
of the tickets mention two topics, and which one is the ticket's intent depends on how they
are put, not on which words occur: the main request then a follow-up ("Also, ..."), or a
problem the customer says is already solved ("my earlier ticket (...) is resolved. Now ...")
before or after the live one. Bag-of-words sees the same words either way, so it cannot tell
those apart; a model that reads the sentence can. 3% of labels are flipped at random (agents
mislabel too). Each intent has the same number of tickets in each split (100 train, 30
validation, 200 test), so the test split (1000 tickets) is large enough for a gap of a few
points to be significant. Seeded: running this again reproduces the files byte for byte.

    python scripts/make_demo_data.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "clfbench" / "demo_data"

PRODUCTS = ["blender", "running shoes", "phone case", "desk lamp", "coffee grinder", "backpack",
            "wireless earbuds", "yoga mat", "winter jacket", "kettle", "monitor stand", "board game"]
OPENERS = ["Hi,", "Hello team,", "Hey,", "Good morning,", "To whom it may concern,", "", "", "Hi there -",
           "Quick question:", "Not happy.", "Hello, hoping you can help.", "Urgent:"]
CLOSERS = ["Thanks.", "Thank you!", "Please advise.", "Cheers", "", "", "Regards, Sam", "Waiting for your reply.",
           "This is the second time I'm writing.", "Appreciate the help.", "Please fix this asap", ""]

INTENTS = {
    "billing": [
        "I was charged twice for order {order}.",
        "my card shows a payment of {amount} but my order total was lower",
        "why is there an extra fee of {amount} on my invoice?",
        "the discount code {code} was not applied at checkout and I paid full price",
        "I need a VAT invoice for order {order} for my company",
        "my bank statement has a charge from you I don't recognise",
        "the price went up between adding the {product} to the cart and paying",
        "can I change the payment method on my subscription? the card expired",
        "I got billed for the premium membership even though I cancelled it last month",
        "payment failed three times but the money left my account",
        "pls explain the {amount} pending authorisation on my credit card",
        "the invoice lists a {product} I never bought",
    ],
    "delivery": [
        "my order {order} still hasn't arrived, tracking has not moved for {days} days",
        "the courier says delivered but there is no parcel at my door",
        "can you change the delivery address for order {order}? I moved",
        "the {product} was supposed to arrive yesterday, where is it?",
        "tracking number {code} doesn't work on the carrier's site",
        "parcel arrived with the box crushed, the {product} inside seems ok though",
        "is express shipping available to my area? need the {product} by friday",
        "only one of the two items in order {order} was delivered",
        "the driver left the package with a neighbour I don't know",
        "delivery keeps getting rescheduled, it's been {days} days",
        "how long does shipping to Canada usually take?",
        "estimated delivery date changed again for the {product}",
    ],
    "returns": [
        "I'd like to return the {product}, it's the wrong size",
        "how do I get a return label for order {order}?",
        "I sent the {product} back {days} days ago and still no refund",
        "the {product} stopped working after a week, I want my money back",
        "can I exchange the {product} for a different colour?",
        "your return portal says my order is not eligible for return",
        "I returned the parcel but the refund was only partial, {amount} is missing",
        "the item I received is not what I ordered, I want to send it back",
        "do I have to pay for return shipping on a faulty {product}?",
        "refund for order {order} went to an old card, what happens now",
        "received a damaged {product}, requesting a replacement or refund",
        "I changed my mind about the {product}, is the 30 day return window still open?",
    ],
    "technical": [
        "the app crashes every time I open my order history",
        "I can't add the {product} to my cart, the button does nothing",
        "checkout page shows an error 500 when I try to pay",
        "the website is extremely slow on my phone",
        "the promo code field gives 'invalid request' for every code",
        "I get logged out every few minutes while browsing",
        "order confirmation emails never reach my inbox",
        "the size guide page for the {product} is blank",
        "your android app won't install, says incompatible device",
        "search returns nothing when I type {product}",
        "images don't load on the product pages since the update",
        "notifications in the app show orders that aren't mine",
    ],
    "account": [
        "I forgot my password and the reset email never comes",
        "please delete my account and all my data",
        "how do I change the email address on my account?",
        "someone else logged into my account and placed order {order}",
        "I have two accounts and want to merge them",
        "I can't verify my phone number, the code never arrives",
        "my loyalty points disappeared from my profile",
        "please unsubscribe me from the marketing emails",
        "I want to update my name after getting married",
        "my account got locked after too many login attempts",
        "can I add my partner as a second user on the account?",
        "the saved addresses in my profile are all gone",
    ],
}
# Sentences that mention another topic without changing the intent of the ticket.
ASIDES = {
    "billing": ["the refund for my last return was fine by the way.", "delivery was quick at least."],
    "delivery": ["I already paid {amount} for express shipping.", "the app says it was charged."],
    "returns": ["your delivery guy was friendly though.", "I paid with my credit card."],
    "technical": ["I was trying to pay for the {product}.", "I wanted to check my return status."],
    "account": ["I need to see my invoice for order {order}.", "I want to track a delivery."],
}
TYPOS = {"the": "teh", "order": "ordr", "received": "recieved", "address": "adress", "payment": "paymnet",
         "account": "acount", "please": "pls", "because": "bc"}


def fill(rng: random.Random, s: str) -> str:
    return s.format(
        order=f"#{rng.randint(100000, 999999)}", amount=f"${rng.randint(3, 240)}.{rng.randint(0, 99):02d}",
        code=rng.choice(["SAVE10", "WELCOME", "1Z999AA1", "JD0146", "SPRING25"]),
        product=rng.choice(PRODUCTS), days=rng.randint(2, 21),
    )


# A problem of another topic that the customer says is already solved: context, not the intent.
# {s} is one of that topic's sentences, without its final punctuation.
SOLVED_BEFORE = [
    "Last week I wrote to you because {s}; that got sorted out, thanks.",
    "My earlier ticket ({s}) is resolved, no need to look at it again.",
    "Update on my last message where {s}: that part is fixed now.",
    "Please ignore my previous email saying {s}, it's fine now.",
    "You already helped me when {s}, thank you for that.",
    "A while ago {s}, but that was fixed quickly.",
]
TURNS = ["Now", "But now", "The new problem:", "What I need help with today:", "This time", "However,",
         "Different issue:", "Today"]
SOLVED_AFTER = [
    "(The other issue, where {s}, was solved last week.)",
    "Just so you know, the time {s} was sorted out already, so that's not the problem.",
    "I'm not asking about the earlier problem where {s}, that one is closed.",
    "My old ticket about how {s} is resolved, this is a new one.",
]
FOLLOW_UPS = ["Also,", "And", "Oh and", "Separately,", "Not urgent but", "Btw"]


def clause(rng: random.Random, intent: str) -> str:
    """One of `intent`'s sentences as a clause: filled in, final punctuation dropped."""
    return fill(rng, rng.choice(INTENTS[intent])).rstrip(".?!")


def ticket(rng: random.Random, intent: str) -> str:
    """A ticket whose intent is `intent`; over half also mention another topic (see the module)."""
    parts = [fill(rng, rng.choice(INTENTS[intent]))]
    if rng.random() < 0.35:  # a second sentence of the same intent
        parts.append(fill(rng, rng.choice(INTENTS[intent])))
    if rng.random() < 0.3:  # a distracting mention of another topic
        parts.append(fill(rng, rng.choice(ASIDES[intent])))
    other = rng.choice([k for k in INTENTS if k != intent])
    form = rng.random()
    if form < 0.25:  # a follow-up request about another topic; the label stays the main one
        parts.insert(1, f"{rng.choice(FOLLOW_UPS)} {fill(rng, rng.choice(INTENTS[other]))}")
    elif form < 0.45:  # a solved problem of another topic, then the live one
        parts[0] = f"{rng.choice(TURNS)} {parts[0]}"
        parts.insert(0, rng.choice(SOLVED_BEFORE).format(s=clause(rng, other)))
    elif form < 0.6:  # the live problem, then a solved one of another topic
        parts.insert(1, rng.choice(SOLVED_AFTER).format(s=clause(rng, other)))
    text = " ".join(p for p in [rng.choice(OPENERS), *parts, rng.choice(CLOSERS)] if p)
    if rng.random() < 0.25:
        words = text.split()
        words = [TYPOS.get(w, w) if rng.random() < 0.5 else w for w in words]
        text = " ".join(words)
    if rng.random() < 0.15:
        text = text.lower()
    return text


SPLITS = {"train": 100, "validation": 30, "test": 200}  # tickets per intent in each split


def main(seed: int = 2026) -> None:
    rng = random.Random(seed)
    names = list(INTENTS)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, per_intent in SPLITS.items():
        rows = [(ticket(rng, intent), intent) for intent in INTENTS for _ in range(per_intent)]
        # 3% label noise: real tickets get mislabeled by agents too.
        rows = [(t, rng.choice(names)) if rng.random() < 0.03 else (t, y) for t, y in rows]
        rng.shuffle(rows)
        with open(OUT / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(rows)
        print(name, len(rows))


if __name__ == "__main__":
    main()
