-- Delivery bookkeeping for the notification log:
-- `emitted_seq`: the highest offset the emitter has sent, so a restart emits what was
--   committed but not yet sent when the process stopped.
-- `pruned_seq`: the highest offset removed by retention, so a resuming client can be told
--   whether its recovery is complete.
INSERT INTO counters (name, value) VALUES ('emitted_seq', 0);
INSERT INTO counters (name, value) VALUES ('pruned_seq', 0);
