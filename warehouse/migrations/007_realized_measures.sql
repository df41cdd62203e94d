-- realized_daily gains the measures issue 11 imports: realized quarticity, the two realized
-- semivariances and the open-to-close return, and `ret` now means the close-to-close log return.
-- Rows imported from the Oxford-Man layout before this migration held open-to-close in `ret`; it
-- moves to `ret_oc` (the close-to-close return is derived from close_price when features are built).
ALTER TABLE realized_daily ADD COLUMN IF NOT EXISTS rq DOUBLE;
ALTER TABLE realized_daily ADD COLUMN IF NOT EXISTS rs_pos DOUBLE;
ALTER TABLE realized_daily ADD COLUMN IF NOT EXISTS rs_neg DOUBLE;
ALTER TABLE realized_daily ADD COLUMN IF NOT EXISTS ret_oc DOUBLE;
UPDATE realized_daily SET ret_oc = ret, ret = NULL WHERE source = 'oxfordman' AND ret_oc IS NULL;
