-- Initial schema. Keys use the "C" collation so listings sort by byte order,
-- like the JSON driver.
CREATE TABLE streams (
    code    TEXT COLLATE "C" PRIMARY KEY,
    version BIGINT  NOT NULL,
    running BOOLEAN NOT NULL DEFAULT FALSE,
    doc     JSONB   NOT NULL
);

CREATE TABLE recordings (
    id          TEXT COLLATE "C" PRIMARY KEY,
    stream_code TEXT COLLATE "C" NOT NULL,
    doc         JSONB NOT NULL
);
CREATE INDEX recordings_stream_code ON recordings (stream_code, id);

CREATE TABLE hooks (
    id  TEXT COLLATE "C" PRIMARY KEY,
    doc JSONB NOT NULL
);
