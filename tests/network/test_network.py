"""Network files: the shipped SCO network, derived ledger accounts, and loader error reporting.

Reference values are written out here (not read from a shared folder) so the tests run in any
clone; they are copied from the reference facts that sco.yaml was built from.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import sco_settle.network
from sco_settle.domain.account import AccountFlags, AccountKind
from sco_settle.domain.account_key import AccountKey, AccountKeyKind
from sco_settle.domain.ids import ID_MAX
from sco_settle.domain.participants import ParticipantKind, ScoStatus
from sco_settle.network import (
    Network,
    NetworkError,
    account_id_for_key,
    load_network,
    parse_network,
)

MEMBERS = {"CN", "RU", "KZ", "KG", "TJ", "UZ", "IN", "PK", "IR", "BY"}
PARTNERS = {
    *("AF", "MN", "AZ", "AM", "BH", "EG", "KH", "QA", "KW"),
    *("MV", "MM", "NP", "AE", "SA", "TR", "LK", "LA"),
}
FORMER_OBSERVERS = {"AF", "MN"}

# PBOC swap lines: counterparty central bank -> (CNY size, local size or None), in major units.
SWAP_SIZES = {
    "CBRFRUMM": (150_000_000_000, ("RUB", 1_325_000_000_000)),
    "NBRKKZKX": (7_000_000_000, ("KZT", 200_000_000_000)),
    "CBUZUZ22": (700_000_000, ("UZS", None)),
    "NATJTJ22": (3_000_000_000, ("TJS", None)),
    "SBPPPKKA": (30_000_000_000, ("PKR", None)),
    "BOMUMNUB": (15_000_000_000, ("MNT", 7_250_000_000_000)),
    "TCMBTR2A": (35_000_000_000, ("TRY", 189_000_000_000)),
    "SAMASARI": (50_000_000_000, ("SAR", 26_000_000_000)),
    "CBAUAEAA": (35_000_000_000, ("AED", 18_000_000_000)),  # renewed Nov 2023
    "QMAGQAQA": (35_000_000_000, ("QAR", None)),
    "CBEGEGCX": (18_000_000_000, ("EGP", None)),
    "NBRBBY2X": (7_000_000_000, ("BYN", None)),
    "CBCELKLX": (10_000_000_000, ("LKR", 410_000_000_000)),
}
UNCERTAIN_SWAP_LINES = {
    *("CBRFRUMM", "NBRKKZKX", "CBUZUZ22", "NATJTJ22"),
    *("QMAGQAQA", "CBEGEGCX", "NBRBBY2X"),  # the UAE line was confirmed renewed in 2023
}
BANK_OF_XINJIANG = "BOXJCNU0"

KEY_PATTERN = re.compile(
    r"^(settlement|issuance|liquidity|fee|fx-income|swap-interest):[A-Z0-9]{8,11}:[A-Z]{3}$"
    r"|^(vostro|swap-line):[A-Z0-9]{8,11}:[A-Z0-9]{8,11}:[A-Z]{3}$"
)


@pytest.fixture(scope="module")
def sco() -> Network:
    return load_network("sco")


def test_public_api_is_sorted_and_importable() -> None:
    assert sco_settle.network.__all__ == sorted(sco_settle.network.__all__)
    for name in sco_settle.network.__all__:
        assert hasattr(sco_settle.network, name), name


# The shipped SCO network.


def test_sco_has_ten_members_and_seventeen_partners(sco: Network) -> None:
    statuses = {country.code: country.sco_status for country in sco.countries}
    assert len(statuses) == 27
    assert {code for code, s in statuses.items() if s is ScoStatus.MEMBER} == MEMBERS
    assert {code for code, s in statuses.items() if s is ScoStatus.PARTNER} == PARTNERS
    by_code = sco.countries_by_code
    former = {
        code
        for code in PARTNERS
        for period in by_code[code].previous_statuses
        if period.status is ScoStatus.OBSERVER
    }
    assert former == FORMER_OBSERVERS
    belarus = [period.status for period in by_code["BY"].previous_statuses]
    assert belarus == [ScoStatus.DIALOGUE_PARTNER, ScoStatus.OBSERVER]


def test_every_state_has_a_central_bank_and_members_have_two_banks(sco: Network) -> None:
    central_banks = Counter(
        p.country for p in sco.participants if p.kind is ParticipantKind.CENTRAL_BANK
    )
    assert set(central_banks) == MEMBERS | PARTNERS
    assert set(central_banks.values()) == {1}
    commercial = Counter(
        p.country
        for p in sco.participants
        if p.kind is ParticipantKind.COMMERCIAL_BANK and not p.synthetic_bic
    )
    for code in MEMBERS:
        assert commercial[code] >= 2, code
    for country in sco.countries:
        agent = sco.currency_settlement_agent(country.currency)
        assert sco.participant(agent).kind is ParticipantKind.CENTRAL_BANK
        assert sco.country_of(agent) == country


def test_bank_of_xinjiang_is_synthetic_uncertain_with_seven_correspondents(sco: Network) -> None:
    bank = sco.participant(BANK_OF_XINJIANG)
    assert bank.synthetic_bic and bank.uncertain and bank.note
    assert bank.bic[7] == "0"  # ISO 9362 test form: never a live BIC.
    # The only other synthetic ids: Bank of Kunlun (no BIC found; China-Iran channel) and
    # Octobank (Alipay+'s Uzbek partner, no BIC found).
    others = {p.bic for p in sco.participants if p.synthetic_bic} - {BANK_OF_XINJIANG}
    assert others == {"KUNLCNB0", "OCTBUZ20"}
    assert all(sco.participant(bic).uncertain for bic in others)
    links = [link for link in sco.correspondent_links if link.holder == BANK_OF_XINJIANG]
    assert len(links) == 7
    assert {sco.participant(link.owner).country for link in links} <= {"KZ", "KG", "TJ", "UZ"}
    assert all(link.uncertain and link.note and link.currency == "CNY" for link in links)


def test_swap_line_sizes_match_the_reference(sco: Network) -> None:
    lines = {line.central_banks[1]: line for line in sco.swap_lines}
    assert set(lines) == set(SWAP_SIZES)
    for bic, (cny, (local, local_size)) in SWAP_SIZES.items():
        line = lines[bic]
        assert line.central_banks[0] == "PBOCCNBJ"
        assert line.size_minor("CNY") == cny * 100
        expected_local = None if local_size is None else local_size * 100
        assert line.size_minor(local) == expected_local, bic
        assert line.tenor_years == (5 if bic == "CBAUAEAA" else 3)  # UAE: 5 y since 2023
        assert line.uncertain is (bic in UNCERTAIN_SWAP_LINES), bic
        assert not line.uncertain or line.note
    assert lines["CBRFRUMM"].signed == "2014-10-13"
    assert lines["CBRFRUMM"].last_signed == "2020-11-22"
    assert lines["TCMBTR2A"].last_signed == "2025-06-13"
    assert lines["SBPPPKKA"].signed == "2011-12"


def test_swap_line_accounts_let_each_side_draw_the_others_currency(sco: Network) -> None:
    accounts = sco.accounts_by_key
    for bic, (cny, (local, local_size)) in SWAP_SIZES.items():
        drawer = accounts[AccountKey.swap_line(bic, "PBOCCNBJ", "CNY")]
        assert (drawer.participant, drawer.currency) == (bic, "CNY")
        assert drawer.credit_limit == cny * 100
        assert drawer.kind == AccountKind.SWAP_LINE
        assert drawer.flags == AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
        provider = accounts[AccountKey.swap_line("PBOCCNBJ", bic, local)]
        assert (provider.participant, provider.currency) == ("PBOCCNBJ", local)
        assert provider.credit_limit == (local_size or 0) * 100


def test_ledger_accounts_follow_the_key_scheme(sco: Network) -> None:
    accounts = sco.ledger_accounts()
    # 119 before the corridor channels of 2026-12-01, 149 before the FX providers' income
    # accounts and the swap lines' facility and interest accounts.
    assert len(accounts) == 270 + len(PSP_SETTLEMENT_BANKS)
    for account in accounts:
        assert KEY_PATTERN.match(account.ref), account.ref
        assert account.id == account_id_for_key(account.ref)
        assert len(account.participant) in (8, 11)
        assert sco.participant(account.participant)
    for entry in sco.participants:
        home = sco.home_currency(entry.bic)
        settlement = sco.accounts_by_key[AccountKey.settlement(entry.bic, home)]
        assert settlement.flags == AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
        if entry.kind is ParticipantKind.CENTRAL_BANK:
            issuance = sco.accounts_by_key[AccountKey.issuance(entry.bic, home)]
            assert issuance.flags == 0
            assert issuance.kind == AccountKind.ISSUANCE
    vostro = sco.accounts_by_key[AccountKey.vostro(BANK_OF_XINJIANG, "HSBKKZKX", "CNY")]
    assert (vostro.participant, vostro.kind) == ("HSBKKZKX", AccountKind.VOSTRO)
    assert vostro.flags == AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS


def test_ids_are_deterministic_unique_and_never_reserved(sco: Network) -> None:
    shipped = Path(sco_settle.network.__file__).parent.parent / "reference_data" / "sco.yaml"
    again = load_network(shipped)
    assert again.ledger_accounts() == sco.ledger_accounts()
    assert again.opening_transfers() == sco.opening_transfers()
    ids = [a.id for a in sco.ledger_accounts()] + [t.id for t in sco.opening_transfers()]
    assert len(set(ids)) == len(ids)
    assert all(0 < number < ID_MAX for number in ids)
    key = "settlement:KZKOKZKX:KZT"
    digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
    assert account_id_for_key(key) == int.from_bytes(digest, "big")


# Ids computed from the text keys before ``AccountKey`` existed: an account key's text form is
# hashed into ledger ids, so these must never change.
PINNED_IDS = {
    AccountKey.settlement("HSBKKZKX", "KZT"): 37458997865206635231284779154558017356,
    AccountKey.issuance("NBRKKZKX", "KZT"): 168650185741462385439094206645700542345,
    AccountKey.vostro("BKCHCNBJ", "HSBKKZKX", "CNY"): 134082858520562194737669565637917420357,
    AccountKey.swap_line("NBRKKZKX", "PBOCCNBJ", "CNY"): 18076733451572292241245923017207364321,
    AccountKey.clearing("PBOCCNBJ", "CNY"): 330244454137384994694751496851965993089,
}
# SHA-256 of "<ref> <id>" per derived account (one a line, file order), and of "<id> <debit>
# <credit> <amount>" per opening transfer, of the shipped network, before ``AccountKey``: the
# accounts added since (the corridor channels of 2026-12-01, ``CORRIDOR_CHANNELS``) left out.
CORRIDOR_CHANNELS = frozenset(
    {
        "UCBAINBB", "UBININBB", "SABRINDD", "VTBRINDD", "RSBNRUMM", "ICBKRUMM", "ICBKKZKX",
        "ICBKPKKA", "ICBKINBB", "SBINCNSH", "HABBCNBU", "KUNLCNB0", "BKPAIRTH", "BKBPIRTH",
    }
)  # fmt: skip


def _first_edition(key: AccountKey, network: Network) -> bool:
    """Whether the account ``key`` was in the network before the corridor channels."""
    added = {("BKCHCNBJ", "KCJBKZKX"), ("BKCHCNBJ", "AKBBBY2X"), ("ICBKCNBJ", "ICBKKZKX")}
    added |= {("ICBKCNBJ", "ICBKRUMM"), ("ICBKCNBJ", "ICBKPKKA")}
    if key.owner in CORRIDOR_CHANNELS or key.counterparty in CORRIDOR_CHANNELS:
        return False
    if key.owner in PSP_SETTLEMENT_BANKS:
        return False  # payment-service providers' settlement banks (2026-12)
    if key.kind in (AccountKeyKind.FX_INCOME, AccountKeyKind.SWAP_INTEREST):
        return False  # FX providers and swap-line tranches (2026-12-07)
    if key.kind is AccountKeyKind.SETTLEMENT and key.owner in {*SWAP_SIZES, "PBOCCNBJ"}:
        return key.currency == network.home_currency(key.owner)  # facilities: foreign ones
    return (key.counterparty, key.owner) not in added


# Banks added as payment-service providers' settlement banks, one settlement account each.
PSP_SETTLEMENT_BANKS = {"CASPKZKA", "SPRBTJ22", "IBTKTJ22", "OCTBUZ20"}
PINNED_ACCOUNTS_DIGEST = "ba38f6d255f01a4cf7252608467a6aa653d629ca487e0010f21f057801340997"
PINNED_OPENINGS_DIGEST = "0656080db6d5613b008a1b2039427920c7f8a22e0095467a2fa24f328ec1368a"


def test_account_ids_of_keys_are_pinned(sco: Network) -> None:
    for key, expected in PINNED_IDS.items():
        assert account_id_for_key(key) == expected, key
        assert account_id_for_key(str(key)) == expected, key
    opening = account_id_for_key(f"opening:{AccountKey.settlement('HSBKKZKX', 'KZT')}")
    assert opening == 137591349258535473940624010751933723473
    first = [a for a in sco.ledger_accounts() if _first_edition(AccountKey.parse(a.ref), sco)]
    accounts = "\n".join(f"{a.ref} {a.id}" for a in first)
    assert hashlib.sha256(accounts.encode()).hexdigest() == PINNED_ACCOUNTS_DIGEST
    kept = {a.id for a in first}
    openings = "\n".join(
        f"{t.id} {t.debit_account} {t.credit_account} {t.amount}"
        for t in sco.opening_transfers()
        if t.credit_account in kept
    )
    assert hashlib.sha256(openings.encode()).hexdigest() == PINNED_OPENINGS_DIGEST


def test_each_account_is_named_by_its_key(sco: Network) -> None:
    for key, account in sco.accounts_by_key.items():
        assert str(key) == account.ref
        assert AccountKey.parse(account.ref) == key
        assert (key.owner, key.currency) == (account.participant, account.currency)
        assert key.kind.value == account.kind  # The network's key kinds are its account kinds.


def test_opening_transfers_come_from_issuance_and_balance_per_currency(sco: Network) -> None:
    by_id = {account.id: account for account in sco.ledger_accounts()}
    debits: dict[str, int] = defaultdict(int)
    credits: dict[str, int] = defaultdict(int)
    transfers = sco.opening_transfers()
    # Every commercial bank and every vostro is funded (32 + 7 before the corridor channels).
    assert len(transfers) == 46 + 23 + len(PSP_SETTLEMENT_BANKS)
    for transfer in transfers:
        debit, credit = by_id[transfer.debit_account], by_id[transfer.credit_account]
        assert debit.currency == credit.currency
        assert debit.kind == AccountKind.ISSUANCE
        assert debit.participant == sco.currency_settlement_agent(credit.currency)
        assert transfer.id == account_id_for_key(f"opening:{credit.ref}")
        assert (transfer.code, transfer.ref, transfer.flags) == (1, "opening balance", 0)
        assert isinstance(transfer.amount, int) and transfer.amount > 0
        debits[debit.currency] += transfer.amount
        credits[credit.currency] += transfer.amount
    assert debits == credits
    halyk = sco.accounts_by_key[AccountKey.settlement("HSBKKZKX", "KZT")]
    funded = {t.credit_account: t.amount for t in transfers}
    assert funded[halyk.id] == 150_000_000_000 * 100


# Loader errors. Each case edits one line of a small valid network and expects the error to name
# that line; the expected line is found in the edited text, not hard-coded.

MINI = """\
format: 1
name: mini
countries:
  - code: KZ
    name: Kazakhstan
    sco_status: member
    sco_status_since: 2001-06-15
    currency: KZT
  - code: CN
    name: China
    sco_status: member
    sco_status_since: 2001-06-15
    currency: CNY
participants:
  - bic: NBRKKZKX
    name: National Bank of Kazakhstan
    kind: central_bank
    country: KZ
  - bic: PBOCCNBJ
    name: People's Bank of China
    kind: central_bank
    country: CN
  - bic: HSBKKZKX
    name: Halyk Bank
    kind: commercial_bank
    country: KZ
    accounts:
      - {kind: settlement, currency: KZT, opening_balance: "1000.50"}
  - bic: BKCHCNBJ
    name: Bank of China
    kind: commercial_bank
    country: CN
correspondent_links:
  - holder: BKCHCNBJ
    owner: HSBKKZKX
    currency: CNY
    credit_limit: 100
swap_lines:
  - central_banks: [PBOCCNBJ, NBRKKZKX]
    size: {CNY: 7000000000, KZT: 200000000000}
    signed: 2014-12-14
    tenor_years: 3
    status: test
"""


BOC = "  - bic: BKCHCNBJ\n    name: Bank of China\n    kind: commercial_bank\n    country: CN\n"


def line_of(text: str, needle: str) -> int:
    """The 1-based number of the only line containing ``needle``."""
    found = [number for number, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(found) == 1, (needle, found)
    return found[0]


def load_error(tmp_path: Path, text: str) -> NetworkError:
    path = tmp_path / "net.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(NetworkError) as caught:
        load_network(path)
    return caught.value


def test_mini_network_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(MINI, encoding="utf-8")
    network = load_network(path)
    assert network == parse_network(MINI)
    assert [t.amount for t in network.opening_transfers()] == [100050]
    vostro = network.accounts_by_key[AccountKey.parse("vostro:BKCHCNBJ:HSBKKZKX:CNY")]
    assert vostro.credit_limit == 10000


@pytest.mark.parametrize(
    ("old", "new", "at", "message"),
    [
        ("bic: HSBKKZKX", "bic: HSBK1ZKX", "HSBK1ZKX", "invalid BIC 'HSBK1ZKX'"),
        ("currency: KZT, opening", "currency: KZX, opening", "KZX", "unknown ISO 4217"),
        ("owner: HSBKKZKX", "owner: KCJBKZKX", "owner:", "unknown participant 'KCJBKZKX'"),
        ("[PBOCCNBJ, NBRKKZKX]", "[PBOCCNBJ, KCJBKZKX]", "central_banks", "unknown participant"),
        (BOC, BOC + BOC.replace("BKCHCNBJ", "bkchcnbj"), "bkchcnbj", "duplicate BIC"),
        ("country: KZ\n    accounts", "country: CN\n    accounts", "bic: HSBK", "does not match"),
        ("credit_limit: 100", "credit_limit: -100", "credit_limit", "must not be negative"),
        ('"1000.50"', "1000.5", "opening_balance", "not a float"),
        ('"1000.50"', '"1000.505"', "opening_balance", "more than 2 decimal places"),
        ("currency: KZT, opening", "currency: CNY, opening", "opening", "participant's currencies"),
        ("[PBOCCNBJ, NBRKKZKX]", "[PBOCCNBJ, BKCHCNBJ]", "central_banks", "not a central bank"),
        ("KZT: 200000000000}", "KZT: 0}", "size:", "must be positive"),
        ("credit_limit: 100", "credit_limit: 100\n    colour: red", "colour", "unknown field"),
        ("kind: central_bank\n    country: CN", "kind: bank\n    country: CN", ": bank", "kind"),
        ("    name: Halyk Bank\n", "", "bic: HSBKKZKX", "missing required field 'name'"),
        ("name: Halyk Bank", "name: Halyk Bank\n    uncertain: true", "uncertain", "needs a note"),
        ("tenor_years: 3", "tenor_years: 3: 4", "tenor_years", "invalid YAML"),
        ("format: 1", "format: 2", "format", "unsupported format 2"),
    ],
)
def test_errors_name_the_file_and_line(
    tmp_path: Path, old: str, new: str, at: str, message: str
) -> None:
    assert old in MINI, old
    text = MINI.replace(old, new, 1)
    error = load_error(tmp_path, text)
    line = line_of(text, at)
    expected = f"{tmp_path / 'net.yaml'}:{line}: "
    matching = [entry for entry in str(error).splitlines() if entry.startswith(expected)]
    assert any(message in entry for entry in matching), str(error)


def test_duplicate_account_is_reported_on_the_second_entry(tmp_path: Path) -> None:
    account = '      - {kind: settlement, currency: KZT, opening_balance: "1000.50"}\n'
    text = MINI.replace(account, account + account.replace("1000.50", "7"), 1)
    error = load_error(tmp_path, text)
    assert error.line == line_of(text, 'opening_balance: "7"')
    assert "duplicate account settlement:HSBKKZKX:KZT" in str(error)


def test_opening_balances_of_a_currency_must_fit_one_issuance_account(tmp_path: Path) -> None:
    account = '      - {kind: settlement, currency: KZT, opening_balance: "1000.50"}\n'
    huge = '      - {kind: liquidity, currency: KZT, opening_balance: "92233720368547758"}\n'
    text = MINI.replace(account, account + huge, 1)
    error = load_error(tmp_path, text)
    assert error.line == line_of(text, "kind: liquidity")
    assert "opening balances in KZT add up to more than" in str(error)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = MINI.replace("owner: HSBKKZKX", "owner: KCJBKZKX").replace(
        "credit_limit: 100", 'credit_limit: "0.001"'
    )
    error = load_error(tmp_path, text)
    assert [line for line, _ in error.problems] == [
        line_of(text, "owner:"),
        line_of(text, "credit_limit"),
    ]


def test_synthetic_bic_must_be_in_test_form_and_uncertain(tmp_path: Path) -> None:
    synthetic = "  - bic: BOXJCNU0\n    name: Bank of Xinjiang\n    kind: commercial_bank\n"
    synthetic += "    country: CN\n    synthetic_bic: true\n"
    text = MINI.replace("correspondent_links:", synthetic + "correspondent_links:")
    error = load_error(tmp_path, text)
    assert error.line == line_of(text, "synthetic_bic")
    assert "must be marked uncertain" in str(error)
    marked = text.replace("synthetic_bic: true", "synthetic_bic: true\n    uncertain: true")
    marked = marked.replace("synthetic_bic: true", "synthetic_bic: true\n    note: no BIC known")
    assert parse_network(marked).participant("BOXJCNU0").synthetic_bic
    undeclared = text.replace("    synthetic_bic: true\n", "")
    error = load_error(tmp_path, undeclared)
    assert error.line == line_of(undeclared, "BOXJCNU0")
    assert "test BIC" in str(error)


def test_shipped_name_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match="no shipped network called 'nowhere'"):
        load_network("nowhere")
    with pytest.raises(NetworkError, match="cannot read the network file"):
        load_network(tmp_path / "absent.yaml")
    with pytest.raises(NetworkError, match=r"<network>:1: a network file must be a YAML mapping"):
        parse_network("- just a list\n")
