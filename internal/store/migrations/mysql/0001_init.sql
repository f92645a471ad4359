-- Initial schema (MySQL 8 / MariaDB 10.5+). Keys are binary-collated
-- utf8mb4 so they compare and sort by bytes, like the JSON driver.
CREATE TABLE streams (
    code    VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    version BIGINT  NOT NULL,
    running BOOLEAN NOT NULL DEFAULT FALSE,
    doc     JSON    NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE recordings (
    id          VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    stream_code VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    doc         JSON NOT NULL,
    INDEX recordings_stream_code (stream_code, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE hooks (
    id  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    doc JSON NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
