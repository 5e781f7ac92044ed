"""The dashboard's pure parts, without a server: the map's SVG, the liquidity count shared with
the simulator, and the ISO 20022 messages rebuilt from a payment's record."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from sco_settle.domain.participants import ScoStatus
from sco_settle.gateway.iso import payment_from_credit_transfer
from sco_settle.messaging.iso20022 import (
    CreditTransferMessage,
    StatusReport,
    read_message,
)
from sco_settle.payments.liquidity_use import (
    SettledFlow,
    liquidity_by_currency,
    liquidity_by_day,
)
from sco_settle.payments.model import PaymentStatus
from sco_settle.payments.modes import Mode
from sco_settle.payments.records import payment_fields
from sco_settle.server.dashboard import map_svg
from sco_settle.server.dashboard.messages import came_as_iso, payment_messages
from tests.iso20022.builders import credit_message, transfer

# -- the map ---------------------------------------------------------------------------------


def _flow(debtor: str, creditor: str, currency: str, value: int, selected: bool = False):
    return map_svg.Flow(
        debtor, creditor, currency, value, f"{debtor} to {creditor} in {currency}",
        f"/dashboard/map?corridor={debtor}-{creditor}", selected,
    )  # fmt: skip


def _svg(flows, statuses=None):
    statuses = statuses or {"CN": ScoStatus.MEMBER, "KZ": ScoStatus.MEMBER, "MN": ScoStatus.PARTNER}
    text = map_svg.render(map_svg.load_geometry(), statuses, flows, title="t")
    return etree.fromstring(text.encode())


SVG = "{http://www.w3.org/2000/svg}"


def test_the_shipped_geometry_covers_every_sco_state_of_the_reference_data():
    from sco_settle.network import load_network

    geometry = map_svg.load_geometry()
    states = [c.code for c in load_network("sco").countries if c.sco_status is not ScoStatus.NONE]
    assert len(states) == 27
    assert set(states) <= set(geometry.countries), set(states) - set(geometry.countries)
    lon_min, lat_min, lon_max, lat_max = geometry.box
    for code in states:  # Every state's point lies inside the map.
        lon, lat = geometry.countries[code].point
        assert lon_min <= lon <= lon_max and lat_min <= lat <= lat_max, code
    assert "Natural Earth" in geometry.source


def test_countries_are_filled_by_their_sco_status_and_tiny_states_get_a_dot():
    svg = _svg([], {"CN": ScoStatus.MEMBER, "MN": ScoStatus.PARTNER, "BH": ScoStatus.PARTNER})
    kinds = {
        group.get("data-country"): group.find(f"{SVG}path").get("class")
        for group in svg.iter(f"{SVG}g")
        if group.get("data-country")
    }
    assert kinds["CN"] == "member" and kinds["MN"] == "partner" and kinds["JP"] == "other"
    bahrain = next(g for g in svg.iter(f"{SVG}g") if g.get("data-country") == "BH")
    assert bahrain.find(f"{SVG}circle") is not None  # too small to see as an outline
    china = next(g for g in svg.iter(f"{SVG}g") if g.get("data-country") == "CN")
    assert china.find(f"{SVG}circle") is None


def test_each_flow_is_a_link_and_widths_compare_within_one_currency_only():
    flows = [
        _flow("KZ", "CN", "KZT", 400),
        _flow("KZ", "CN", "CNY", 1),  # tiny in CNY, but the only CNY flow: full width
        _flow("CN", "KZ", "KZT", 100),
        _flow("CN", "CN", "CNY", 0),  # domestic: a ring
        _flow("KZ", "ZZ", "KZT", 5),  # outside the map: left to the table
    ]
    svg = _svg(flows)
    links = {(a.get("data-corridor"), a.get("data-currency")): a for a in svg.iter(f"{SVG}a")}
    assert set(links) == {("KZ-CN", "KZT"), ("KZ-CN", "CNY"), ("CN-KZ", "KZT"), ("CN-CN", "CNY")}

    def width(key):
        return float(links[key].find(f"{SVG}g").get("stroke-width"))

    full = map_svg.WIDTH_MIN + map_svg.WIDTH_SPAN
    assert width(("KZ-CN", "KZT")) == round(full, 1) == width(("KZ-CN", "CNY"))
    assert width(("CN-KZ", "KZT")) == round(map_svg.WIDTH_MIN + map_svg.WIDTH_SPAN / 2, 1)
    assert links[("CN-CN", "CNY")].find(f"{SVG}g/{SVG}circle") is not None
    assert all(a.find(f"{SVG}title").text for a in links.values())
    assert links[("KZ-CN", "KZT")].get("href") == "/dashboard/map?corridor=KZ-CN"


def test_a_selected_corridor_is_marked_and_drawn_last():
    svg = _svg([_flow("KZ", "CN", "KZT", 4, selected=True), _flow("CN", "KZ", "CNY", 4)])
    links = list(svg.iter(f"{SVG}a"))
    assert links[-1].get("data-corridor") == "KZ-CN"
    assert links[-1].get("aria-current") == "true" and "selected" in links[-1].get("class")
    assert "dimmed" in links[0].get("class")


def test_text_in_labels_is_escaped():
    flow = map_svg.Flow("KZ", "CN", "KZT", 1, '<script>"x"</script>', "/d?a=1&b=2")
    text = map_svg.render(map_svg.load_geometry(), {}, [flow], title="<t>")
    assert "<script>" not in text and "&lt;script&gt;" in text and "a=1&amp;b=2" in text


# -- liquidity: gross against used -----------------------------------------------------------


def _settled(at: int, debtor: str, creditor: str, amount: int, day: int = 0) -> SettledFlow:
    return SettledFlow(day, at, debtor, "CNY", amount, creditor, "CNY", amount)


def test_offsetting_in_one_chain_uses_no_liquidity():
    # A and B pay each other 100 in one chain (bilateral offsetting): nothing needed but gross.
    use = liquidity_by_currency([_settled(5, "A", "B", 100), _settled(5, "B", "A", 100)])["CNY"]
    assert (use.gross_minor, use.peak_minor, use.net_minor) == (200, 0, 0)
    assert use.saved_minor(Mode.RTGS) == 200


def test_rtgs_uses_the_peak_and_dns_the_net_debits_of_each_chain():
    flows = [_settled(1, "A", "B", 100), _settled(2, "B", "A", 60), _settled(3, "A", "C", 30)]
    use = liquidity_by_currency(flows)["CNY"]
    # A: -100, -40, -70 -> peak 100; B: +100, +40 -> peak 0; C never debits.
    assert (use.gross_minor, use.peak_minor, use.net_minor) == (190, 100, 190)
    assert use.used_minor(Mode.RTGS) == 100 and use.saved_minor(Mode.RTGS) == 90
    assert use.used_minor(Mode.DNS) == 190 and use.saved_minor(Mode.DNS) == 0


def test_positions_restart_each_day():
    flows = [_settled(1, "A", "B", 100, day=0), _settled(2, "A", "B", 100, day=1)]
    days = liquidity_by_day(flows)
    assert days[(0, "CNY")].peak_minor == 100 == days[(1, "CNY")].peak_minor
    assert liquidity_by_currency(flows)["CNY"].peak_minor == 200


def test_a_participant_counts_only_its_own_positions():
    flows = [_settled(1, "A", "B", 100), _settled(2, "B", "C", 70)]
    mine = liquidity_by_currency(flows, lambda bic, code: bic == "B")["CNY"]
    assert (mine.gross_minor, mine.peak_minor) == (70, 0)  # B was paid 100 first
    theirs = liquidity_by_currency(flows, lambda bic, code: bic == "A")["CNY"]
    assert (theirs.gross_minor, theirs.peak_minor) == (100, 100)


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from("ABC"), st.sampled_from("ABC"),
                          st.integers(0, 10**6)), max_size=30))  # fmt: skip
def test_used_never_exceeds_gross_and_the_parts_add_up(raw):
    flows = [_settled(at, d, c, amount) for at, d, c, amount in sorted(raw)]
    whole = liquidity_by_currency(flows).get("CNY")
    if whole is None:
        return
    assert 0 <= whole.peak_minor <= whole.net_minor <= whole.gross_minor
    parts = [liquidity_by_currency(flows, lambda bic, code, p=p: bic == p) for p in "ABC"]
    assert sum(p["CNY"].gross_minor for p in parts if "CNY" in p) == whole.gross_minor
    assert sum(p["CNY"].peak_minor for p in parts if "CNY" in p) == whole.peak_minor


def test_the_simulator_reports_with_the_same_count():
    """``sim/report.py`` counts with ``payments.liquidity_use`` (one definition): its
    liquidity table equals the shared function over the run's settled payments."""
    from sco_settle.sim.report import _liquidity_by_day, _settled_groups
    from sco_settle.sim.run import SimOptions, run_simulation

    result = run_simulation(SimOptions(days=1, seed=3, mode=Mode.RTGS, scale=Fraction(1, 8000)))
    meta = {sim.payment.payment_id: sim for sim in result.payments}
    flows = [
        SettledFlow(day, result.finals[pid].settled_at, meta[pid].payment.debtor_agent,
                    meta[pid].payment.currency, meta[pid].payment.amount_minor,
                    meta[pid].payment.creditor_agent, meta[pid].payment.creditor_currency,
                    result.finals[pid].delivered_minor)
        for day, group in _settled_groups(result) for pid in group
    ]  # fmt: skip
    expected = {
        k: [u.gross_minor, u.peak_minor, u.net_minor] for k, u in liquidity_by_day(flows).items()
    }
    assert _liquidity_by_day(result, meta) == expected
    assert any(cells[0] > cells[1] for cells in expected.values())  # something was saved


# -- ISO 20022 messages of a payment ---------------------------------------------------------


def _shown(message: CreditTransferMessage, status: PaymentStatus = PaymentStatus.SETTLED):
    payment = payment_from_credit_transfer(message.transfers[0])
    instruction = payment_fields(payment)
    del instruction["payment_id"]
    settled = status is PaymentStatus.SETTLED
    return payment, {
        "payment_id": payment.payment_id,
        "status": status.value,
        "reason": None if settled else "AM04",
        "reason_text": "" if settled else "insufficient funds",
        "amount_delivered_minor": payment.amount_minor if settled else 0,
        "amount_sent_minor": 1_000_000 if settled else 0,
        "amount_returned_minor": 0,
        "route": [],
        "transfer_ids": [],
        "settled_at": 2 * 10**18 if settled else 0,
        "received_at": 2 * 10**18 - 5,
        "instruction": instruction,
        "events": [{"status": status.value, "at": 2 * 10**18, "detail": ""}],
    }


def test_a_credit_transfer_is_rebuilt_into_the_same_payment_and_its_status_report():
    sent = credit_message((transfer(1),))
    payment, shown = _shown(sent)
    found = payment_messages(shown, "PBOCCNBJ")
    assert [m.name for m in found] == ["in", "out"]
    incoming = read_message(found[0].xml)  # XSD-valid, and reads back to the same payment
    assert isinstance(incoming, CreditTransferMessage) and incoming.definition.startswith(
        "pacs.008"
    )
    again = payment_from_credit_transfer(incoming.transfers[0])
    assert payment_fields(again) == payment_fields(payment)
    report = read_message(found[1].xml)
    assert isinstance(report, StatusReport) and report.definition.startswith("pacs.002")
    status = report.transactions[0]
    assert status.status == "ACSC" and status.original_uetr == payment.uetr
    settled = re.search(
        r"<OrgnlTxRef>.*<IntrBkSttlmAmt Ccy=\"KZT\">([^<]+)<", found[1].xml.decode()
    )
    assert settled is not None and Decimal(settled.group(1)) * 100 == payment.amount_minor
    assert found[1].summary == "status ACSC"


def test_a_rejected_payment_is_answered_rjct_with_its_reason():
    _, shown = _shown(credit_message((transfer(2),)), PaymentStatus.REJECTED)
    out = read_message(payment_messages(shown, "PBOCCNBJ")[1].xml)
    assert isinstance(out, StatusReport)
    assert out.transactions[0].status == "RJCT"
    assert out.transactions[0].reasons[0].code == "AM04"


def test_a_bank_to_bank_transfer_is_a_pacs_009_and_json_payments_have_no_messages():
    from sco_settle.messaging.iso20022 import Agent

    banks = transfer(3, debtor=Agent(bicfi="HSBKKZKX"), creditor=Agent(bicfi="NBFAUZ2X"),
                     debtor_account=None, creditor_account=None, charge_bearer=None)  # fmt: skip
    payment, shown = _shown(credit_message((banks,), definition="pacs.009.001.08"))
    shown["instruction"]["debtor"] = shown["instruction"]["creditor"] = {"name": "", "account": ""}
    found = payment_messages(shown, "PBOCCNBJ")
    assert found[0].definition == "pacs.009.001.08"
    assert isinstance(read_message(found[0].xml), CreditTransferMessage)
    shown["payment_id"] = "HSBKKZKX:instruction-7"  # the JSON door's id
    assert payment_messages(shown, "PBOCCNBJ") == []
    assert came_as_iso(payment)


def test_money_in_messages_is_exact():
    sent = credit_message((transfer(4, settlement_amount_minor=123_456_789_01),))
    _, shown = _shown(sent)
    xml = payment_messages(shown, "PBOCCNBJ")[0].xml.decode()
    amount = re.search(r'<IntrBkSttlmAmt Ccy="KZT">([^<]+)<', xml)
    assert amount is not None and Decimal(amount.group(1)) == Decimal("12345678901") / 100
