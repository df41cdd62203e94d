-- The predictions column `var` (the variance of the target session's return) is renamed `variance`,
-- so it no longer reads like VaR beside var95/var99. Data and constraints are unchanged.
ALTER TABLE predictions RENAME COLUMN var TO variance;
