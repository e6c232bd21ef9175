"""The hub path of every task, with `datasets.load_dataset` replaced by in-memory datasets.

Each fake dataset has the real hub dataset's column names, types and ClassLabel names (as
published on the Hugging Face hub), so every `hub:` block's paths, configs, split names,
columns and label maps are exercised, ClassLabel integer labels included. The label ids
are drawn in shuffled order, and each text names its class, so a wrong decoding shows.
"""

import datasets
import numpy as np
import pytest
from datasets import ClassLabel, Features, Value

from clfbench.cli import main
from clfbench.data.tasks import get_task
from clfbench.data.tasks.loading import load_task
from clfbench.errors import ClfbenchError

NLI3 = ["entailment", "neutral", "contradiction"]
TREC_COARSE = ["ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"]
TREC_FINE = (
    "ABBR:abb ABBR:exp ENTY:animal ENTY:body ENTY:color ENTY:cremat ENTY:currency ENTY:dismed "
    "ENTY:event ENTY:food ENTY:instru ENTY:lang ENTY:letter ENTY:other ENTY:plant ENTY:product "
    "ENTY:religion ENTY:sport ENTY:substance ENTY:symbol ENTY:techmeth ENTY:termeq ENTY:veh "
    "ENTY:word DESC:def DESC:desc DESC:manner DESC:reason HUM:gr HUM:ind HUM:title HUM:desc "
    "LOC:city LOC:country LOC:mount LOC:other LOC:state NUM:code NUM:count NUM:date NUM:dist "
    "NUM:money NUM:ord NUM:other NUM:period NUM:perc NUM:speed NUM:temp NUM:volsize NUM:weight"
).split()
BANKING77 = (
    "activate_my_card age_limit apple_pay_or_google_pay atm_support automatic_top_up "
    "balance_not_updated_after_bank_transfer balance_not_updated_after_cheque_or_cash_deposit "
    "beneficiary_not_allowed cancel_transfer card_about_to_expire card_acceptance card_arrival "
    "card_delivery_estimate card_linking card_not_working card_payment_fee_charged "
    "card_payment_not_recognised card_payment_wrong_exchange_rate card_swallowed "
    "cash_withdrawal_charge cash_withdrawal_not_recognised change_pin compromised_card "
    "contactless_not_working country_support declined_card_payment declined_cash_withdrawal "
    "declined_transfer direct_debit_payment_not_recognised disposable_card_limits "
    "edit_personal_details exchange_charge exchange_rate exchange_via_app "
    "extra_charge_on_statement failed_transfer fiat_currency_support "
    "get_disposable_virtual_card get_physical_card getting_spare_card getting_virtual_card "
    "lost_or_stolen_card lost_or_stolen_phone order_physical_card passcode_forgotten "
    "pending_card_payment pending_cash_withdrawal pending_top_up pending_transfer pin_blocked "
    "receiving_money Refund_not_showing_up request_refund reverted_card_payment? "
    "supported_cards_and_currencies terminate_account top_up_by_bank_transfer_charge "
    "top_up_by_card_charge top_up_by_cash_or_cheque top_up_failed top_up_limits "
    "top_up_reverted topping_up_by_card transaction_charged_twice transfer_fee_charged "
    "transfer_into_account transfer_not_received_by_recipient transfer_timing "
    "unable_to_verify_identity verify_my_identity verify_source_of_funds verify_top_up "
    "virtual_card_not_working visa_or_mastercard why_verify_identity "
    "wrong_amount_of_cash_received wrong_exchange_rate_for_cash_withdrawal"
).split()
DBPEDIA = ["Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder",
           "MeanOfTransportation", "Building", "NaturalPlace", "Village", "Animal", "Plant",
           "Album", "Film", "WrittenWork"]
CFPB_PRODUCTS = [
    "Credit reporting, credit repair services, or other personal consumer reports",
    "Debt collection", "Mortgage", "Credit card or prepaid card", "Checking or savings account",
    "Credit reporting", "Student loan", "Money transfer, virtual currency, or money service",
    "Credit card", "Vehicle loan or lease", "Bank account or service",
    "Payday loan, title loan, or personal loan", "Consumer Loan", "Payday loan",
    "Money transfers", "Prepaid card", "Other financial service", "Virtual currency",
]
S, I32 = Value("string"), Value("int32")

# (path, config) -> features, label column, splits, whether it is a loading-script dataset
# (those load only from the hub's Parquet export, revision refs/convert/parquet).
HUB = {
    ("nyu-mll/glue", "sst2"): ({"sentence": S, "label": ClassLabel(names=["negative", "positive"]), "idx": I32},
                               "label", ["train", "validation", "test"], False),
    ("nyu-mll/glue", "rte"): ({"sentence1": S, "sentence2": S,
                               "label": ClassLabel(names=["entailment", "not_entailment"]), "idx": I32},
                              "label", ["train", "validation", "test"], False),
    ("nyu-mll/glue", "mnli"): ({"premise": S, "hypothesis": S, "label": ClassLabel(names=NLI3), "idx": I32},
                               "label", ["train", "validation_matched", "validation_mismatched",
                                         "test_matched", "test_mismatched"], False),
    ("google/boolq", None): ({"question": S, "answer": Value("bool"), "passage": S},
                             "answer", ["train", "validation"], False),
    ("facebook/anli", "plain_text"): ({"uid": S, "premise": S, "hypothesis": S,
                                       "label": ClassLabel(names=NLI3), "reason": S}, "label",
                                      [f"{s}_r{r}" for s in ("train", "dev", "test") for r in (1, 2, 3)], False),
    ("fancyzhx/ag_news", None): ({"text": S, "label": ClassLabel(names=["World", "Sports", "Business", "Sci/Tech"])},
                                 "label", ["train", "test"], False),
    ("stanfordnlp/imdb", "plain_text"): ({"text": S, "label": ClassLabel(names=["neg", "pos"])},
                                         "label", ["train", "test", "unsupervised"], False),
    ("fancyzhx/dbpedia_14", "dbpedia_14"): ({"label": ClassLabel(names=DBPEDIA), "title": S, "content": S},
                                            "label", ["train", "test"], False),
    ("CogComp/trec", "default"): ({"text": S, "coarse_label": ClassLabel(names=TREC_COARSE),
                                   "fine_label": ClassLabel(names=TREC_FINE)}, "fine_label", ["train", "test"], True),
    ("PolyAI/banking77", "default"): ({"text": S, "label": ClassLabel(names=BANKING77)}, "label",
                                      ["train", "test"], True),
    ("CFPB/consumer-finance-complaints", "default"): (
        {"Date Received": Value("timestamp[s]"), "Product": ClassLabel(names=CFPB_PRODUCTS),
         "Issue": S, "Complaint Text": S, "Company": S, "Complaint ID": S},
        "Product", ["train"], True),
}
PER_CLASS = 4


def fake_split(path, name, split):
    """A small split with the real schema; every class present, labels in shuffled order."""
    features, label_col, _, _ = HUB[path, name]
    label = features[label_col]
    names = label.names if isinstance(label, ClassLabel) else [False, True]
    rng = np.random.default_rng(len(split))
    order = rng.permutation(np.repeat(np.arange(len(names)), PER_CLASS))
    rows = {col: [] for col in features}
    for i, k in enumerate(order):
        word = f"{names[k]}"
        for col, feat in features.items():
            if col == label_col:
                value = int(k) if isinstance(label, ClassLabel) else bool(names[k])
            elif col == "coarse_label":
                value = TREC_COARSE.index(names[k].split(":")[0])
            elif isinstance(feat, ClassLabel):
                value = 0
            elif feat.dtype == "int32":
                value = i
            elif feat.dtype.startswith("timestamp"):
                value = None
            elif col in ("uid", "Complaint ID"):
                value = f"u{split}{i}"
            else:
                value = f"{split} {i} {col} is about {word} <br />ok"
            rows[col].append(value)
    if label_col == "Product":  # a complaint without narrative, as most CFPB records are
        rows["Complaint Text"][0] = None
    return datasets.Dataset.from_dict(rows, features=Features(features))


@pytest.fixture
def fake_hub(monkeypatch):
    calls = []

    def load_dataset(path, name=None, split=None, revision=None, **kwargs):
        calls.append((path, name, split, revision))
        if (path, name) not in HUB:
            raise FileNotFoundError(f"Dataset '{path}' ({name}) doesn't exist on the Hub")
        _, _, splits, script = HUB[path, name]
        if script and revision != "refs/convert/parquet":
            raise RuntimeError(f"Dataset scripts are no longer supported, but found {path.split('/')[1]}.py")
        if split not in splits:
            raise ValueError(f"Unknown split {split!r}. Should be one of {splits}.")
        return fake_split(path, name, split)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


TASKS = ["sst2", "rte", "mnli", "boolq", "anli_r1", "ag_news", "imdb", "dbpedia_14",
         "trec-coarse", "trec-fine", "banking77", "cfpb"]


@pytest.mark.parametrize("name", TASKS)
def test_hub_block_loads_the_real_schema(fake_hub, name):
    task = get_task(name)
    s = load_task(task, None, data_seed=3)
    assert [c[0] for c in fake_hub] == [task.hub["path"]] * len(task.hub["splits"])
    assert s.notes["origin"].startswith(f"hub dataset {task.hub['path']}")
    for part in (s.train, s.validation, s.test):
        assert len(part) > 0
        assert part.is_pair == task.is_pair
        for text, label in zip(part.texts, part.labels):
            assert "<br />" not in text or name != "imdb"
            shown = text.split(" is about ")[1].split(" <br")[0].split(" ")[0]
            expected = part.label_names[label]
            if name == "imdb":
                assert {"neg": "negative", "pos": "positive"}[shown] == expected
            elif name == "boolq":
                assert shown.lower() == expected
            elif name == "cfpb":
                continue
            elif name == "trec-coarse":  # the fake texts name the fine label
                assert shown.split(":")[0] == expected
            else:
                assert shown == expected.split(" ")[0], (text, expected)
    assert set(s.train.label_names[i] for i in s.train.labels) == set(task.labels)
    ids = [set(p.ids) for p in (s.train, s.validation, s.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_script_datasets_load_from_the_parquet_export(fake_hub):
    for name in ("trec-fine", "banking77", "cfpb"):
        load_task(get_task(name), None)
    assert {c[3] for c in fake_hub} == {"refs/convert/parquet"}


def test_cfpb_products_are_grouped_and_narrative_less_rows_dropped(fake_hub):
    s = load_task(get_task("cfpb"), None, data_seed=1)
    rows = {t: s.train.label_names[k] for part in (s.train, s.validation, s.test)
            for t, k in zip(part.texts, part.labels)}
    n_kept = (len(CFPB_PRODUCTS) - 1) * PER_CLASS - 1  # 'Other financial service' and one empty
    assert len(rows) == n_kept
    by_product = {}
    for text, group in rows.items():
        product = text.split(" is about ")[1].removesuffix(" <br />ok")
        by_product.setdefault(product, set()).add(group)
    assert by_product["Mortgage"] == {"mortgages_and_loans"}
    assert by_product["Checking or savings account"] == {"retail_banking"}
    assert by_product["Prepaid card"] == {"credit_card"}
    assert by_product["Debt collection"] == {"debt_collection"}
    assert "Other financial service" not in by_product
    assert "carved" in s.notes["test_source"]


def test_dbpedia_and_ag_news_texts_are_reshaped(fake_hub):
    s = load_task(get_task("dbpedia_14"), None)
    assert s.test.texts[0].startswith("test 0 title is about") and ". test 0 content" in s.test.texts[0]
    fake_hub.clear()
    s = load_task(get_task("ag_news"), None)
    assert all("<br />" in t for t in s.test.texts)  # ag_news_clean leaves other markup alone


def test_no_network_is_one_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ClfbenchError, match=r"task sst2: cannot load nyu-mll/glue split 'train' from the hub "
                                            r"\(Couldn't reach .*\); without network use --data-dir"):
        load_task(get_task("sst2"), None)


def test_cli_without_network_exits_2_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    out = tmp_path / "runs"
    assert main(["run", "--task", "rte", "--method", "tfidf-lr", "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot load nyu-mll/glue" in err[0] and "--data-dir" in err[0]
    assert not out.exists()
