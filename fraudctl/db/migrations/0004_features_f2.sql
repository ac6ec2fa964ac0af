-- Feature version f2: the card's 30-day count and amount and its baseline (both as they stood when
-- base_day began, so a burst today cannot inflate what today is compared with), and the
-- latest known fraud per merchant and day of labels (the days since a terminal's last known
-- fraud). Cards from before f2 start their 30-day history at zero.
ALTER TABLE card_state
    ADD COLUMN count_30d    double precision NOT NULL DEFAULT 0,
    ADD COLUMN amount_30d   double precision NOT NULL DEFAULT 0,
    ADD COLUMN base_day     double precision NOT NULL DEFAULT 0,  -- days since the epoch
    ADD COLUMN base_count   double precision NOT NULL DEFAULT 0,
    ADD COLUMN base_amount  double precision NOT NULL DEFAULT 0;

-- Epoch seconds of the latest fraudulent transaction among the day's labels (NULL: none).
ALTER TABLE merchant_label_daily ADD COLUMN last_fraud_ts double precision;
