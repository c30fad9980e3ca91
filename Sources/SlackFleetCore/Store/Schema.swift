import GRDB

/// The database schema, as numbered migrations that each run in their own transaction.
///
/// Never edit a migration that has shipped: add the next one. Tests migrate from empty and
/// from every earlier version, with data in place.
public enum Schema {
    /// The identifiers of every migration, in order.
    public static var migrationIdentifiers: [String] { ["v1-inventory-secrets", "v2-audit", "v3-runs", "v4-audit-change-index", "v5-rotation", "v6-connections", "v7-retirement", "v8-shards"] }

    /// The migrator that brings any earlier database to the current schema.
    public static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-inventory-secrets") { db in
            try db.execute(sql: """
                CREATE TABLE meta (
                    key TEXT PRIMARY KEY NOT NULL,
                    value BLOB NOT NULL
                );
                CREATE TABLE workspace (
                    id TEXT PRIMARY KEY NOT NULL,
                    name TEXT NOT NULL UNIQUE,
                    api_url TEXT NOT NULL,
                    allow_insecure_http INTEGER NOT NULL DEFAULT 0,
                    config_token_ref TEXT NOT NULL,
                    refresh_token_ref TEXT NOT NULL,
                    config_token_expires_at TEXT,
                    bot_token_ref TEXT,
                    canary_channel TEXT
                );
                CREATE TABLE instance (
                    name TEXT PRIMARY KEY NOT NULL,
                    base_url TEXT NOT NULL,
                    host_urls TEXT NOT NULL,
                    ip_allowlist TEXT NOT NULL,
                    workspace_id TEXT NOT NULL REFERENCES workspace(id) ON DELETE RESTRICT,
                    app_group TEXT NOT NULL,
                    api_key_ref TEXT NOT NULL,
                    canary_entity TEXT,
                    canary_project TEXT,
                    labels TEXT NOT NULL,
                    registrar TEXT NOT NULL,
                    allow_insecure_http INTEGER NOT NULL DEFAULT 0,
                    enabled INTEGER NOT NULL DEFAULT 1
                );
                CREATE INDEX instance_app ON instance(workspace_id, app_group);
                CREATE TABLE app (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    workspace_id TEXT NOT NULL REFERENCES workspace(id) ON DELETE RESTRICT,
                    app_group TEXT NOT NULL,
                    generation INTEGER NOT NULL,
                    stage TEXT NOT NULL CHECK (stage IN ('pending', 'current', 'previous', 'retired')),
                    slack_app_id TEXT,
                    client_id TEXT,
                    client_secret_ref TEXT,
                    signing_secret_ref TEXT,
                    verification_token_ref TEXT,
                    created_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL,
                    UNIQUE (workspace_id, app_group, generation)
                );
                CREATE TABLE secret (
                    name TEXT PRIMARY KEY NOT NULL,
                    sealed BLOB NOT NULL,
                    fingerprint TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("v2-audit") { db in
            try db.execute(sql: """
                CREATE TABLE audit_entry (
                    seq INTEGER PRIMARY KEY NOT NULL,
                    time TEXT NOT NULL,
                    run_id TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    command TEXT NOT NULL,
                    instance TEXT,
                    target TEXT NOT NULL,
                    action TEXT NOT NULL,
                    phase TEXT NOT NULL,
                    detail TEXT NOT NULL,
                    prev_hash TEXT NOT NULL,
                    hash TEXT NOT NULL
                );
                CREATE INDEX audit_entry_instance ON audit_entry(instance, seq);
                CREATE INDEX audit_entry_time ON audit_entry(time);
                CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry
                BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: entries cannot be changed'); END;
                CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry
                BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: entries cannot be deleted'); END;
                """)
        }
        migrator.registerMigration("v3-runs") { db in
            try db.execute(sql: """
                CREATE TABLE run (
                    id TEXT PRIMARY KEY NOT NULL,
                    job TEXT NOT NULL,
                    dry_run INTEGER NOT NULL,
                    actor TEXT NOT NULL,
                    started_at TEXT NOT NULL,
                    finished_at TEXT,
                    status TEXT NOT NULL,
                    summary TEXT NOT NULL DEFAULT '{}'
                );
                CREATE TABLE run_result (
                    run_id TEXT NOT NULL REFERENCES run(id) ON DELETE CASCADE,
                    instance TEXT NOT NULL,
                    app_group TEXT NOT NULL,
                    result TEXT NOT NULL,
                    detail TEXT NOT NULL,
                    duration_ms INTEGER NOT NULL,
                    PRIMARY KEY (run_id, instance)
                );
                CREATE INDEX run_result_instance ON run_result(instance);
                CREATE TABLE run_lock (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    run_id TEXT NOT NULL,
                    job TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    host TEXT NOT NULL,
                    started_at TEXT NOT NULL,
                    heartbeat_at TEXT NOT NULL
                );
                CREATE TABLE app_snapshot (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    app_id INTEGER NOT NULL REFERENCES app(id),
                    taken_at TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    manifest TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("v4-audit-change-index") { db in
            // Finding intents without an outcome (crash recovery, at the start of every run)
            // looks outcomes up by change id: index it, or the lookup grows with the log squared.
            try db.execute(sql: """
                CREATE INDEX audit_entry_change ON audit_entry(json_extract(detail, '$.change_id'), phase);
                CREATE INDEX audit_entry_phase ON audit_entry(phase);
                """)
        }
        migrator.registerMigration("v5-rotation") { db in
            // config_token: the pair tooling.tokens.rotate returned last, sealed in the vault. It
            // stands in for the inventory's references while the inventory's refresh token is
            // the one it was derived from (seed_fingerprint); a new seed in the inventory wins.
            // instance_credential: which app each instance was last given, and how far that got,
            // so a rotation killed at any point resumes from the recorded stage.
            try db.execute(sql: """
                CREATE TABLE config_token (
                    workspace_id TEXT PRIMARY KEY NOT NULL,
                    seed_fingerprint TEXT NOT NULL,
                    token_ref TEXT NOT NULL,
                    refresh_token_ref TEXT NOT NULL,
                    expires_at TEXT NOT NULL,
                    rotated_at TEXT NOT NULL
                );
                CREATE TABLE instance_credential (
                    instance TEXT PRIMARY KEY NOT NULL,
                    app_id INTEGER NOT NULL REFERENCES app(id),
                    state TEXT NOT NULL CHECK (state IN ('registering', 'running')),
                    updated_at TEXT NOT NULL
                );
                ALTER TABLE app ADD COLUMN stage_changed_at TEXT;
                ALTER TABLE app ADD COLUMN origin TEXT NOT NULL DEFAULT 'created';
                """)
        }
        migrator.registerMigration("v6-connections") { db in
            // watch_entities: the W&B entities besides the canary whose Slack integrations a
            // rotation must not break. run_result gains what a person needs to see per instance:
            // the connection state, the action they must take, and the delivery latency.
            // rotation_wait: a rotation stage that waits for a person (in place: "regenerate the
            // secret in Slack's settings"; blue/green: "connect through the new app"), since when.
            // integration_baseline: the Slack integrations that existed on watched entities when a
            // blue/green rotation moved instances off `app_id`; that app is kept until each is
            // reconnected through the new one (or gone).
            try db.execute(sql: """
                ALTER TABLE instance ADD COLUMN watch_entities TEXT NOT NULL DEFAULT '[]';
                ALTER TABLE run_result ADD COLUMN connection TEXT;
                ALTER TABLE run_result ADD COLUMN action TEXT;
                ALTER TABLE run_result ADD COLUMN delivery_seconds REAL;
                CREATE TABLE rotation_wait (
                    workspace_id TEXT NOT NULL,
                    app_group TEXT NOT NULL,
                    stage TEXT NOT NULL CHECK (stage IN ('awaiting-regenerate', 'awaiting-connect')),
                    app_id INTEGER NOT NULL REFERENCES app(id),
                    since TEXT NOT NULL,
                    PRIMARY KEY (workspace_id, app_group)
                );
                CREATE TABLE integration_baseline (
                    app_id INTEGER NOT NULL REFERENCES app(id),
                    instance TEXT NOT NULL,
                    entity TEXT NOT NULL,
                    integration_id TEXT NOT NULL,
                    team_name TEXT NOT NULL,
                    channel_name TEXT NOT NULL,
                    recorded_at TEXT NOT NULL,
                    PRIMARY KEY (app_id, instance, entity, integration_id)
                );
                """)
        }
        migrator.registerMigration("v7-retirement") { db in
            // retirement: NULL for an instance in service; 'marked' when the inventory says
            // `retire: true`; 'removed' for a tombstone, an instance removed from the inventory
            // after it was given an app's credentials, kept until `retire` has retired it.
            try db.execute(sql: """
                ALTER TABLE instance ADD COLUMN retirement TEXT CHECK (retirement IN ('marked', 'removed'));
                """)
        }
        migrator.registerMigration("v8-shards") { db in
            // workspace.runner: the shard a workspace is pinned to when the fleet is split.
            // runner_shard: the shard this database holds (`inventory import --shard K/N`), so
            // every later command acts on that shard's workspaces only.
            try db.execute(sql: """
                ALTER TABLE workspace ADD COLUMN runner TEXT;
                CREATE TABLE runner_shard (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    shard_index INTEGER NOT NULL,
                    shard_count INTEGER NOT NULL
                );
                """)
        }
        return migrator
    }
}
