"""Korean documents: keyword search meets a question and a passage on their morphemes (korean.py)."""

import pytest

from pgask import korean
from pgask.kb import KnowledgeBase

from .helpers import as_schema_version_4, write

pytestmark = pytest.mark.skipif(not korean.available(), reason="kiwipiepy (pgask[korean]) is not installed")

# The question shares no whole word with its passage: Korean attaches particles and endings
# (테이블의 / 테이블을, 분산키는 / 분산 키를, 바꾸나요 / 바꾸려면).
QUESTION = "테이블의 분산키는 어떻게 바꾸나요?"
PASSAGE = "분산 키를 바꾸려면 테이블을 다시 만들어야 합니다. 데이터는 새 키에 따라 세그먼트에 나뉩니다."


@pytest.fixture
def korean_docs(tmp_path):
    write(tmp_path / "distribution.md", f"# 분산 정책\n\n{PASSAGE}\n")
    write(tmp_path / "backup.md", "# 백업\n\n백업은 매일 밤 실행됩니다. 복원할 때는 같은 버전의 도구를 씁니다.\n")
    write(tmp_path / "english.md", "# Distribution keys\n\nChange a table's distribution key with ALTER TABLE.\n")
    return tmp_path


def plain_lexemes(conn, text):
    return {r[0] for r in conn.execute("SELECT unnest(tsvector_to_array(to_tsvector('english', %s)))", (text,))}


def test_a_korean_question_finds_its_passage_by_morphemes(kb, korean_docs):
    kb.ingest([korean_docs])
    with kb.connection() as conn:
        # without the analyzer the two texts would share no lexeme at all
        assert not plain_lexemes(conn, QUESTION) & plain_lexemes(conn, "분산 정책 " + PASSAGE)
        keywords = conn.execute(f"SELECT c.keywords FROM {kb.schema}.chunks c JOIN {kb.schema}.documents d "
                                "ON d.id = c.document_id WHERE d.source LIKE '%%distribution.md'").fetchone()[0]
    assert {"테이블", "분산", "키", "바꾸"} <= set(keywords.split())
    hits = kb.search(QUESTION, k=3, mode="keyword")
    assert hits and hits[0].source.endswith("distribution.md")
    assert not any(h.source.endswith("backup.md") for h in hits)


def test_text_without_hangul_gets_no_keywords(kb, korean_docs):
    kb.ingest([korean_docs])
    with kb.connection() as conn:
        rows = conn.execute(f"SELECT c.keywords FROM {kb.schema}.chunks c JOIN {kb.schema}.documents d "
                            "ON d.id = c.document_id WHERE d.source LIKE '%%english.md'").fetchall()
    assert rows and all(k == "" for k, in rows)
    assert korean.query_text("distribution key") == "distribution key"


def test_an_earlier_knowledge_base_is_upgraded(settings, korean_docs, tmp_path):
    with KnowledgeBase(settings) as kb:
        kb.ingest([korean_docs / "english.md"])
        s = kb.schema
        with kb.connection() as conn:
            before = as_schema_version_4(conn, s)
            stats = conn.execute(f"SELECT chunks, lexemes FROM {s}.keyword_stats").fetchone()
    with KnowledgeBase(settings) as kb:
        assert [h.source for h in kb.search("distribution key", k=1, mode="keyword")][0].endswith("english.md")
        with kb.connection() as conn:
            assert conn.execute(f"SELECT chunks, lexemes FROM {s}.keyword_stats").fetchone() == stats
            assert conn.execute(f"SELECT count(*), sum(fts_length) FROM {s}.chunks").fetchone() == before
            assert conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexname = 'chunks_fts_idx'",
                                (s,)).fetchone()[0] == 1
        kb.ingest([korean_docs])
        assert kb.search(QUESTION, k=1, mode="keyword")[0].source.endswith("distribution.md")
