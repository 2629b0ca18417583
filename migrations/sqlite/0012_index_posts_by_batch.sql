-- Posts are added to the search index by the writer, one statement per committed batch
-- (`store::writer::INDEX_POSTS`), no longer by a trigger per row: FTS5 writes its pending
-- words to disk as a new segment each time a savepoint opens, and each statement in a
-- transaction opens one, so the trigger made one segment per post and merged them again and
-- again (more than half of SQLite's work per post). Edits and deletes keep their triggers.
-- Only the writer inserts messages people wrote; system lines are never indexed.
DROP TRIGGER messages_fts_insert;
