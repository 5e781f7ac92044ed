-- 0003: what a payment debited from its debtor agent (``PaymentOutcome.amount_sent_minor``)
-- and what settled returns paid back (``amount_returned_minor``), beside what it delivered.
-- A payment with a fixed received amount (a pacs.008's ``IntrBkSttlmAmt``) learns its sent
-- amount only when it settles; 0 until then (and in rows from before this column, where the
-- sent amount is the instruction's ``amount_minor``). A return is a payment of its own; its
-- original counts here what those returns paid back.
ALTER TABLE payments ADD COLUMN sent bigint NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN returned bigint NOT NULL DEFAULT 0;
