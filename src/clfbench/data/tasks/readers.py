"""Readers and transforms for datasets that are not plain tables. Task YAMLs name them.

- A *reader* (`reader:` in a `local:` block) reads a file format `io.read_table` does not
  know: `reader(path, spec) -> DataFrame`.
- A *transform* (`transform:` in a `local:` or `hub:` block) reshapes the table after
  reading: `transform(df) -> DataFrame` (join fields, strip prompt wrappers, map labels).
Both return plain columns; `io.frame_to_labeled` then checks texts, labels and ids the
same way for every task. Where a hub copy and a local copy of a dataset differ only in
layout, the same transform makes their texts identical.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pandas as pd

from clfbench.errors import ClfbenchError

# --- readers --------------------------------------------------------------------------


def trec_label_lines(path: Path, spec: dict[str, Any]) -> pd.DataFrame:
    """UIUC TREC lines `COARSE:fine question ...` -> text, coarse_label, fine_label, line.

    The column names match the hub's CogComp/trec. As there (and in torchtext), the one
    stray 0xF0 byte of the original train file ("sister?city") becomes a space.
    """
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.replace(b"\xf0", b" ").decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise ClfbenchError(f"{path}: line {lineno}: not valid UTF-8 ({e.reason})") from None
            if not line:
                continue
            label, _, question = line.partition(" ")
            coarse, sep, fine = label.partition(":")
            if not sep or not coarse or not fine or not question.strip():
                raise ClfbenchError(
                    f"{path}: line {lineno}: expected 'COARSE:fine question', got {line[:40]!r}"
                )
            rows.append(
                {"text": question.strip(), "coarse_label": coarse, "fine_label": label, "line": lineno}
            )
    if not rows:
        raise ClfbenchError(f"{path}: no questions")
    return pd.DataFrame(rows)


# --- transforms -----------------------------------------------------------------------

_AG_ENTITY = re.compile(r"\s?#(\d+);")  # "&#36;" lost its "&" in the original crawl: " #36;10"


def _clean_ag_news(text: str) -> str:
    """AG News artefacts: '\\' for a line break, HTML entities with and without the '&'."""
    text = _AG_ENTITY.sub(lambda m: chr(int(m.group(1))), text)
    text = html.unescape(text).replace("\\", " ")
    return re.sub(r"\s+", " ", text).strip()


def ag_news_join(df: pd.DataFrame) -> pd.DataFrame:
    """Original ag_news_csv rows (label, title, description) -> text as on the hub, cleaned."""
    out = df.copy()
    out["text"] = (df["title"] + " " + df["description"]).map(_clean_ag_news)
    return out


def ag_news_clean(df: pd.DataFrame) -> pd.DataFrame:
    """The hub's ag_news text (title + ' ' + description), cleaned like the local files."""
    out = df.copy()
    out["text"] = df["text"].map(_clean_ag_news)
    return out


def dbpedia_join(df: pd.DataFrame) -> pd.DataFrame:
    """DBpedia-14: title and content -> one text, 'Title. Content'."""
    out = df.copy()
    out["text"] = [f"{t.strip()}. {c.strip()}" for t, c in zip(df["title"], df["content"])]
    return out


def imdb_clean(df: pd.DataFrame) -> pd.DataFrame:
    """IMDB reviews carry HTML line breaks (`<br /><br />`); make them plain spaces."""
    out = df.copy()
    out["text"] = df["text"].str.replace(r"<br\s*/?>", " ", regex=True).str.strip()
    return out


_CFPB_TRAIN = re.compile(r"^\s*Narrative:\s*(.*?)\s*Product:\s*$", re.S)
_CFPB_TEST = re.compile(r"^\s*Including narratives.*?\nComment:\s*(.*?)\s*Product:\s*$", re.S)


def cfpb_strip_prompts(df: pd.DataFrame) -> pd.DataFrame:
    """IBM's CFPB extract stores prompts, not texts: keep only the complaint narrative.

    train: "Narrative: <text>\\nProduct:\\n"; test: "Including narratives choice the best
    match product ...\\nComment: <text>\\nProduct:\\n". Any other shape is an error.
    """
    texts = []
    for row, prompt in enumerate(df["input"]):
        m = _CFPB_TRAIN.match(prompt) or _CFPB_TEST.match(prompt)
        if m is None:
            raise ClfbenchError(
                f"row {row + 1}: 'input' is neither 'Narrative: ...\\nProduct:' nor "
                f"'... Comment: ...\\nProduct:' ({prompt[:40]!r})"
            )
        texts.append(m.group(1))
    out = df.copy()
    out["text"] = texts
    return out


# The CFPB's own product names (all releases of the Consumer Complaint Database) grouped
# into the five products of the Kaggle "complaints_processed" grouping that IBM's extract
# (the local cfpb files) uses. "Other financial service" has no group and is dropped.
CFPB_PRODUCT_GROUPS = {
    "Credit reporting, credit repair services, or other personal consumer reports": "credit_reporting",
    "Credit reporting or other personal consumer reports": "credit_reporting",
    "Credit reporting": "credit_reporting",
    "Debt collection": "debt_collection",
    "Debt or credit management": "debt_collection",
    "Credit card or prepaid card": "credit_card",
    "Credit card": "credit_card",
    "Prepaid card": "credit_card",
    "Checking or savings account": "retail_banking",
    "Bank account or service": "retail_banking",
    "Money transfer, virtual currency, or money service": "retail_banking",
    "Money transfers": "retail_banking",
    "Virtual currency": "retail_banking",
    "Mortgage": "mortgages_and_loans",
    "Student loan": "mortgages_and_loans",
    "Vehicle loan or lease": "mortgages_and_loans",
    "Payday loan, title loan, or personal loan": "mortgages_and_loans",
    "Payday loan, title loan, personal loan, or advance loan": "mortgages_and_loans",
    "Consumer Loan": "mortgages_and_loans",
    "Payday loan": "mortgages_and_loans",
}


def cfpb_hub_products(df: pd.DataFrame) -> pd.DataFrame:
    """CFPB/consumer-finance-complaints -> text (the narrative) and the five product groups.

    Complaints without a published narrative (most of the database) and products outside
    the five groups are dropped.
    """
    text = df["Complaint Text"].fillna("").astype(str).str.strip()
    group = df["Product"].map(CFPB_PRODUCT_GROUPS)
    keep = (text != "") & group.notna()
    out = pd.DataFrame({"text": text[keep], "label": group[keep]})
    if "Complaint ID" in df.columns:
        out["id"] = df.loc[keep, "Complaint ID"].astype(str)
    return out.reset_index(drop=True)
