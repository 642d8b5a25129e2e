-- Prices set while the gateway runs (`tollgate price set`, `PUT /admin/prices/{pattern}`),
-- on top of the config file's `pricing` table: an override of a pattern the file has
-- takes that entry's place. Nano-dollars per token (USD per million tokens x 1000), with
-- cache_read and cache_write already defaulted to the input price.
CREATE TABLE price_overrides (
    pattern           TEXT PRIMARY KEY,
    input_nanos       INTEGER NOT NULL,
    output_nanos      INTEGER NOT NULL,
    cache_read_nanos  INTEGER NOT NULL,
    cache_write_nanos INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
