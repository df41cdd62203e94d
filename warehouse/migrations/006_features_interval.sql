-- Which bar interval each stored session's daily features were computed from (issue 14).
-- A rebuild from another interval must not silently replace them (RV from 1m and 1h bars differ) and
-- must never delete sessions it did not recompute. NULL: written before this column existed.
ALTER TABLE features_daily ADD COLUMN IF NOT EXISTS bar_interval VARCHAR;
