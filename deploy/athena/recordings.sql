-- The archive's index (rc-archiver writes it beside the recordings: <prefix>_index/date=YYYY-MM-DD/*.jsonl.gz)
-- as an Amazon Athena / Trino table. Replace the bucket and prefix in LOCATION and in
-- storage.location.template (both), and the start of the projected date range.
--
-- Partition projection: Athena computes the partitions from the date range, so no MSCK REPAIR TABLE or
-- crawler is needed as runs add days. Always filter on `date` (the call's date, UTC) to read only
-- those days' files.
--
-- The index holds personal data (phone numbers): give this table, the workgroup's result bucket and the
-- index prefix the same access as the recordings (README: "Who should have access").
--
-- A recording archived twice (an operator's repair) has two rows: the one with the latest archived_at
-- is current. `rc-archiver index rebuild` writes the index again from the sidecars.

CREATE EXTERNAL TABLE IF NOT EXISTS rc_recordings (
  recording_id          string,
  call_id               string,
  session_id            string,
  telephony_session_id  string,
  start_time            string,          -- the recording's start, ISO 8601 UTC (2026-03-04T10:11:12.345Z)
  call_start_time       string,          -- the call's start: what `date` partitions by
  duration              int,             -- seconds
  direction             string,          -- Inbound | Outbound
  from_number           string,
  to_number             string,
  numbers               array<string>,   -- every party number of the call (record and legs), E.164
  extension_numbers     array<string>,
  `key`                 string,          -- the audio's key under the prefix (sidecar: same key, .json)
  size                  bigint,
  sha256                string,
  content_type          string,
  archived_at           string
)
PARTITIONED BY (`date` string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://my-recordings/ringcentral/_index/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy-MM-dd',
  'projection.date.range' = '2020-01-01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://my-recordings/ringcentral/_index/date=${date}/'
);

-- Every recording of every call with +1 650 555 0100, March to May 2026:
--   SELECT recording_id, call_start_time, direction, from_number, to_number, "key", sha256
--   FROM rc_recordings
--   WHERE "date" BETWEEN '2026-03-01' AND '2026-05-31'
--     AND contains(numbers, '+16505550100')
--   ORDER BY call_start_time;
--
-- Trino (Hive connector) takes the same columns with
--   WITH (format = 'JSON', partitioned_by = ARRAY['date'], external_location = 's3://.../_index/')
-- and `CALL system.sync_partition_metadata('default', 'rc_recordings', 'ADD')` after new days.
