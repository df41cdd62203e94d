-- features_daily rows built from imported realized measures (interval 'realized') have no bars:
-- the bar-only columns, and the measures a realized file may not carry, become nullable. A row
-- built from bars still fills every one of them (the features quality suite checks that).
ALTER TABLE features_daily ALTER COLUMN open DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN high DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN low DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN close DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN ret_oc DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN n_bars DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN expected_bars DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN coverage DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN n_returns DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN bv DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN jv DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN rq DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN rs_pos DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN rs_neg DROP NOT NULL;
ALTER TABLE features_daily ALTER COLUMN jump_count DROP NOT NULL;
