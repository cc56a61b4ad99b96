-- The table the first mesh's sensor logger writes to: one row per sensor_value alert.
-- Run it in the database the logger uses (sensor_data). The Docker set-up runs it at first start.
-- A production design would rather map sensor names to ids, index by time, partition, etc.

CREATE TABLE IF NOT EXISTS numeric_data (
  sensor_name text NOT NULL,
  "timestamp" timestamp with time zone NOT NULL DEFAULT now(),
  value_raw double precision NOT NULL,
  value_cal double precision
);

CREATE INDEX IF NOT EXISTS numeric_data_sensor_time ON numeric_data (sensor_name, "timestamp");
