"""Generate the demo dataset shipped in src/clfbench/demo_data (support tickets, 5 intents).

Written from scratch for clfbench (no external data). Tickets are composed from many
phrasings per intent, with shared vocabulary across intents (money words in refund and
billing tickets, parcels in delivery and returns tickets), mentions of a second topic,
typos and varied length, so that bag-of-words is good but not perfect. Seeded: running this
again reproduces the files byte for byte.

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


def ticket(rng: random.Random, intent: str) -> str:
    parts = [rng.choice(OPENERS), fill(rng, rng.choice(INTENTS[intent]))]
    if rng.random() < 0.35:  # a second sentence of the same intent
        parts.append(fill(rng, rng.choice(INTENTS[intent])))
    if rng.random() < 0.3:  # a distracting mention of another topic
        parts.append(fill(rng, rng.choice(ASIDES[intent])))
    if rng.random() < 0.45:  # a follow-up request about another topic; the label stays the main one
        other = rng.choice([k for k in INTENTS if k != intent])
        lead = rng.choice(["Also,", "And", "Oh and", "Separately,", "Not urgent but", "Btw"])
        parts.insert(2, f"{lead} {fill(rng, rng.choice(INTENTS[other]))}")
    parts.append(rng.choice(CLOSERS))
    text = " ".join(p for p in parts if p)
    if rng.random() < 0.25:
        words = text.split()
        words = [TYPOS.get(w, w) if rng.random() < 0.5 else w for w in words]
        text = " ".join(words)
    if rng.random() < 0.15:
        text = text.lower()
    return text


def main(n_per_class: int = 130, seed: int = 2026) -> None:
    rng = random.Random(seed)
    rows = [(ticket(rng, intent), intent) for intent in INTENTS for _ in range(n_per_class)]
    # 3% label noise: real tickets get mislabeled by agents too.
    names = list(INTENTS)
    rows = [(t, rng.choice(names)) if rng.random() < 0.03 else (t, y) for t, y in rows]
    rng.shuffle(rows)
    n = len(rows)
    splits = {"train": rows[: int(0.6 * n)], "validation": rows[int(0.6 * n): int(0.75 * n)],
              "test": rows[int(0.75 * n):]}
    OUT.mkdir(parents=True, exist_ok=True)
    for name, part in splits.items():
        with open(OUT / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(part)
        print(name, len(part))


if __name__ == "__main__":
    main()
