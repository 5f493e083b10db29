package main

// FerretDB v1.24's SQLite backend looks a document up by `_id` (find, update, delete) with
// `WHERE _ferretdb_sjson->'$._id' = ?`, but the unique index it creates for `_id` is on
// `_ferretdb_sjson->"_id"`: SQLite matches indexes on expressions by their text, so every
// such lookup scans the whole table and parses each row's JSON (`EXPLAIN QUERY PLAN` says
// `SCAN`). maidian's rollup consumer upserts documents one `_id` at a time, so on this test
// server its cost grew with the square of the data. The keeper below gives each collection
// table the index those lookups need, as soon as the table appears; FerretDB itself is
// unchanged (its own metadata does not list the index, and dropping a collection drops it).

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite"
)

// idIndexSuffix names the index added to a table `t`: `t` + this.
const idIndexSuffix = "__id_lookup"

// keepIDIndexes adds the `_id` lookup index to every collection table of every database file
// in dir, checking every `every` until ctx ends.
func keepIDIndexes(ctx context.Context, dir string, every time.Duration, logger *slog.Logger) {
	dbs := map[string]*watched{}
	defer func() {
		for _, w := range dbs {
			w.db.Close()
		}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		seen := map[string]bool{}
		for _, f := range files {
			seen[f] = true
			w, err := watch(dbs, f)
			if err == nil {
				err = w.index(ctx)
			}
			if err != nil && ctx.Err() == nil {
				// A database dropped meanwhile, or busy: the next pass tries again.
				logger.Debug("id index keeper", "file", f, "error", err)
				if w != nil {
					w.db.Close()
					delete(dbs, f)
				}
			}
		}
		for f, w := range dbs {
			if !seen[f] {
				w.db.Close()
				delete(dbs, f)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// watched is one database file the keeper has open, with the schema version it last indexed.
type watched struct {
	db      *sql.DB
	file    os.FileInfo
	version int64
}

// watch returns the open handle of file f, reopening it when the file was replaced (a
// database dropped and created again).
func watch(dbs map[string]*watched, f string) (*watched, error) {
	st, err := os.Stat(f)
	if err != nil {
		return nil, err
	}
	if w, ok := dbs[f]; ok {
		if os.SameFile(w.file, st) {
			return w, nil
		}
		w.db.Close()
		delete(dbs, f)
	}
	db, err := sql.Open("sqlite", "file:"+f+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	w := &watched{db: db, file: st, version: -1}
	dbs[f] = w
	return w, nil
}

// index creates the missing lookup indexes when the schema changed since the last pass.
func (w *watched) index(ctx context.Context) error {
	var version int64
	if err := w.db.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&version); err != nil {
		return err
	}
	if version == w.version {
		return nil
	}
	rows, err := w.db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE '\_ferretdb\_%' ESCAPE '\'
		AND name || ? NOT IN (SELECT name FROM sqlite_master WHERE type = 'index')`, idIndexSuffix)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s (_ferretdb_sjson->'$._id')`,
			quote(t+idIndexSuffix), quote(t))
		if _, err := w.db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	// Read again: our own CREATE INDEX changed it.
	if err := w.db.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&version); err != nil {
		return err
	}
	w.version = version
	return nil
}

// quote makes an SQLite identifier.
func quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
