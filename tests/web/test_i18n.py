"""English and Korean: Accept-Language and the language switch choose the pages' language, showcase texts fall back
to the other language when one is empty, the API answers in English whatever is asked, and the Korean catalogue
translates every message the code and templates mark (checked with Babel, no gettext tools needed)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract
from babel.messages.pofile import read_po
from django.conf import settings
from django.core.management import call_command
from django.utils import translation
from django.utils.translation.template import templatize

from partners.models import Partner
from tests.web.conftest import make_member, signed_in
from usecases.models import UseCase, UseCaseStatus

KOREAN = {"HTTP_ACCEPT_LANGUAGE": "ko-KR,ko;q=0.9,en;q=0.5"}
CATALOGUE = Path(settings.BASE_DIR) / "locale" / "ko" / "LC_MESSAGES" / "django.po"


@pytest.fixture
def seeded(db):
    call_command("seed_alliance", stdout=io.StringIO())


def test_a_korean_browser_gets_the_gallery_in_korean_with_the_showcases_korean_texts(seeded, client):
    response = client.get("/", **KOREAN)
    page = response.content.decode()
    assert response["Content-Language"] == "ko"
    assert '<html lang="ko">' in page
    assert "얼라이언스 파트너들이 만드는 것" in page and "What alliance partners build" not in page
    assert "패션 디자인 AI 아티스트, 틸다" in page and "Tilda, the AI fashion artist" not in page
    assert "갤러리" in page and "로그인" in page  # the site's navigation
    assert ">콘텐츠<" in page or "· 콘텐츠" in page  # a sector's name

    detail = client.get("/usecases/tilda-the-ai-fashion-artist/", **KOREAN).content.decode()
    assert "틸다는 디자이너의 말을" in detail and "플레이그라운드에서 체험하기" in detail


def test_without_a_korean_preference_the_pages_stay_english(seeded, client):
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9").content.decode()
    assert '<html lang="en">' in page
    assert "What alliance partners build" in page and "Tilda, the AI fashion artist" in page
    assert "패션" not in page


def test_the_portal_sign_in_page_speaks_korean(client):
    response = client.get("/portal/login/", **KOREAN)
    page = response.content.decode()
    assert response.status_code == 200
    assert "파트너 구성원은 로그인하여" in page
    assert '<label for="id_username">사용자 이름</label>' in page
    assert "Forgot your password?" not in page and "비밀번호를 잊으셨습니까?" in page


def test_the_api_guide_is_translated_and_its_code_samples_are_not(db, client):
    page = client.get("/api/guide/", **KOREAN).content.decode()
    assert "<h2>인증</h2>" in page and "<h2>엔드포인트</h2>" in page
    assert "최신순 작업 목록입니다" in page  # an endpoint's description, from portal/guide.py
    assert '"capability": "keyword_extraction"' in page.replace("&quot;", '"')  # the curl sample as it was
    assert "Authentication" not in page


def test_the_language_switch_sets_a_cookie_and_the_next_page_is_korean(db, client):
    client.get("/partners/")  # the CSRF cookie the switch's form would carry
    response = client.post("/i18n/setlang/", {"language": "ko", "next": "/partners/"})
    assert response.status_code == 302 and response["Location"] == "/partners/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ko"

    page = client.get("/partners/").content.decode()  # no Accept-Language: the cookie decides
    assert "얼라이언스 파트너" in page and "Alliance partners" not in page

    client.post("/i18n/setlang/", {"language": "en", "next": "/partners/"})
    page = client.get("/partners/", **KOREAN).content.decode()  # the switch's choice outranks the browser's
    assert "Alliance partners" in page


def test_every_page_has_the_language_switch_naming_both_languages(db, client):
    page = client.get("/api/guide/").content.decode()
    assert 'action="/i18n/setlang/"' in page
    assert '<option value="en" lang="en" selected>English</option>' in page
    assert '<option value="ko" lang="ko">한국어</option>' in page


def test_the_api_answers_in_english_whatever_the_request_asks(db, client):
    english = client.get("/api/v1/jobs")
    korean = client.get("/api/v1/jobs", **KOREAN)
    assert korean.status_code == english.status_code == 401
    assert korean.json() == english.json()  # DRF ships Korean messages: the API does not use them
    assert "Content-Language" not in korean


def _showcase(partner: Partner, **texts: str) -> UseCase:
    return UseCase.objects.create(
        slug=f"case-{UseCase.objects.count()}",
        partner=partner,
        sector="finance",
        capabilities=["summarization"],
        status=UseCaseStatus.PUBLISHED,
        **texts,
    )


def test_a_showcase_text_falls_back_to_the_other_language_when_one_is_empty(db):
    partner = Partner.objects.create(name="Bank", slug="bank", sector="finance")
    english_only = _showcase(partner, title="Loan helper", summary="Answers loan questions.")
    both = _showcase(partner, title="Card helper", title_ko="카드 도우미", summary="Cards.", summary_ko="카드 안내.")
    korean_only = _showcase(partner, title_ko="예금 도우미", summary_ko="예금을 안내합니다.")

    assert english_only.in_language("title", "ko") == "Loan helper"
    assert both.in_language("title", "ko") == "카드 도우미" and both.in_language("title", "en") == "Card helper"
    assert korean_only.in_language("summary", "en") == "예금을 안내합니다."
    with translation.override("ko"):
        assert (english_only.local_title, both.local_summary) == ("Loan helper", "카드 안내.")
    with translation.override("en"):
        assert (korean_only.local_title, both.local_story) == ("예금 도우미", "")


def test_the_gallery_card_detail_page_and_directory_profile_fall_back_to_english(db, client):
    partner = Partner.objects.create(name="Bank", slug="bank", sector="finance", listed=True)
    _showcase(partner, title="Loan helper", summary="Answers loan questions.", story="Reads the loan terms.")
    _showcase(partner, title="Card helper", title_ko="카드 도우미", summary="Cards.", summary_ko="카드를 안내합니다.")

    gallery = client.get("/", **KOREAN).content.decode()
    assert "Loan helper" in gallery and "Answers loan questions." in gallery  # no Korean: the English text
    assert "카드 도우미" in gallery and "Card helper" not in gallery
    detail = client.get("/usecases/case-0/", **KOREAN).content.decode()
    assert "<h1>Loan helper</h1>" in detail and "Reads the loan terms." in detail
    profile = client.get("/partners/bank/", **KOREAN).content.decode()
    assert "Loan helper" in profile and "카드를 안내합니다." in profile and "Cards." not in profile


def test_the_gallery_search_finds_korean_texts(seeded, client):
    page = client.get("/", {"q": "상담"}, **KOREAN).content.decode()
    assert "고객의 마음을 읽는 상담 챗봇" in page and "틸다" not in page.split("aria-live")[1]


# ---------------------------------------------------------------- the catalogue is complete

KEYWORDS = {
    "_": None,
    "gettext": None,
    "gettext_lazy": None,
    "gettext_noop": None,
    "ngettext": (1, 2),
    "ngettext_lazy": (1, 2),
    "pgettext": ((1, "c"), 2),
    "pgettext_lazy": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3),
}
SOURCES = ("alliance", "partners", "usecases", "inference", "capabilities", "portal", "monitoring")


def _marked_messages() -> set:
    """Every message the code and templates mark, found as makemessages finds them (templates through Django's own
    templatize) but with Babel's extractor, so no gettext tools are needed."""
    found = set()
    root = Path(settings.BASE_DIR)
    for folder in SOURCES:
        for path in sorted((root / folder).rglob("*")):
            if "migrations" in path.parts or not path.is_file():
                continue
            if path.suffix == ".py":
                code = path.read_bytes()
            elif path.suffix in (".html", ".txt") and "templates" in path.parts:
                python = templatize(path.read_text(), origin=str(path))  # Python-like text, indented as the template
                code = "\n".join(line.lstrip() for line in python.splitlines()).encode()
            else:
                continue
            for _line, message, _comments, _context in extract("python", io.BytesIO(code), keywords=KEYWORDS):
                found.add(message)
    return found


def test_the_korean_catalogue_translates_every_marked_message_and_nothing_else():
    catalogue = read_po(CATALOGUE.open("rb"))
    entries = {message.id: message for message in catalogue if message.id}
    marked = _marked_messages()
    assert len(marked) > 400
    assert sorted(map(str, marked - entries.keys())) == [], "marked but missing: run makemessages -l ko"
    assert sorted(map(str, entries.keys() - marked)) == [], "in the catalogue but marked nowhere (stale)"
    untranslated = [m.id for m in entries.values() if not all(m.string if isinstance(m.string, tuple) else [m.string])]
    assert untranslated == []
    assert [m.id for m in entries.values() if m.fuzzy] == []
    assert catalogue.plural_forms == "nplurals=1; plural=0;"


def test_every_capability_has_a_korean_name_and_description():
    from capabilities import CAPABILITIES
    from portal.catalogue import catalogue

    with translation.override("ko"):
        entries = catalogue(tuple(CAPABILITIES))
    for entry in entries:
        capability = CAPABILITIES[entry["name"]]
        assert entry["description"] != capability.description, f"{entry['name']}: no Korean description"
        assert re.search("[가-힣]", entry["label"]), entry["label"]


def test_the_korean_catalogue_is_compiled_for_django():
    with translation.override("ko"):
        assert translation.gettext("Gallery") == "갤러리"
        assert translation.ngettext("%(counter)s showcase", "%(counter)s showcases", 3) % {"counter": 3} == (
            "쇼케이스 3개"
        )


@pytest.mark.parametrize(
    ("path", "korean"),
    [
        ("/portal/", "최근 작업"),
        ("/portal/keys/", "키 발급"),
        ("/portal/usage/", "이번 달 할당량 대비 사용량"),
        ("/portal/jobs/", "아직 작업이 없습니다."),
        ("/portal/datasets/", "데이터 업로드"),
        ("/portal/tuning/", "튜닝 시작"),
        ("/portal/members/", "구성원 초대"),
        ("/portal/showcases/", "새 쇼케이스"),
        ("/portal/showcases/new/", "제목(한국어)"),
        ("/portal/audit/", "감사 로그"),
        ("/portal/profile/", "소속 파트너"),
        ("/playground/", "코드 보기"),
        ("/join/", "얼라이언스 가입"),
    ],
)
def test_a_korean_owner_sees_the_portal_in_korean(owner, path, korean):
    client = signed_in(owner)
    response = client.get(path, **KOREAN)
    page = response.content.decode()
    assert response.status_code == 200
    assert korean in page
    if path.startswith("/portal/") and path != "/portal/profile/":
        assert "소유자" in page  # the member's role in the portal's header, a translated choice label


def test_a_showcase_saved_from_the_portal_keeps_both_languages(developer):
    client = signed_in(developer)
    response = client.post(
        "/portal/showcases/new/",
        {
            "title_ko": "대출 도우미",
            "summary_ko": "대출 질문에 답합니다.",
            "sector": "finance",
            "capabilities": ["dialogue"],
        },
        **KOREAN,
    )
    assert response.status_code == 302
    usecase = UseCase.objects.get(title_ko="대출 도우미")
    assert (usecase.title, usecase.summary, usecase.summary_ko) == ("", "", "대출 질문에 답합니다.")
    page = client.get(response["Location"], **KOREAN).content.decode()
    assert "초안을 저장했습니다." in page  # the view's message, in the member's language

    refused = client.post("/portal/showcases/new/", {"sector": "finance", "capabilities": ["dialogue"]}, **KOREAN)
    assert refused.status_code == 400
    assert "영어나 한국어(또는 둘 다)로 작성해 주십시오." in refused.content.decode()


def test_seeding_again_adds_the_korean_texts_a_showcase_lacks_and_keeps_edited_ones(seeded):
    UseCase.objects.filter(slug="tilda-the-ai-fashion-artist").update(title_ko="", summary_ko="", story_ko="")
    UseCase.objects.filter(slug="an-ai-banker-tuned-on-finance-language").update(title_ko="우리 AI 은행원")
    call_command("seed_alliance", stdout=io.StringIO())
    tilda = UseCase.objects.get(slug="tilda-the-ai-fashion-artist")
    assert tilda.title_ko == "패션 디자인 AI 아티스트, 틸다" and tilda.story_ko.startswith("틸다는")
    assert UseCase.objects.get(slug="an-ai-banker-tuned-on-finance-language").title_ko == "우리 AI 은행원"


def test_a_showcase_recipe_and_its_run_speak_korean_and_hand_the_script_its_korean_texts(seeded):
    """The recipe section, the recipe's own labels and titles (label_ko, title_ko), a run's step states, and the texts
    the page's script writes (json_script): Korean for a Korean member, English for an English one."""
    slug = "a-counselling-customer-service-chatbot"
    client = signed_in(make_member(Partner.objects.get(slug="lg-uplus"), "developer"))
    page = client.get(f"/usecases/{slug}/", **KOREAN).content.decode()
    assert "<h2>실행해 보기</h2>" in page and "Run it" not in page
    assert "이 쇼케이스는 레시피입니다. 4단계가 각각 플랫폼의 실제 작업으로" in page
    assert '<label for="recipe-message">고객 메시지</label>' in page and "<li>상담 메모: <code>summarization" in page
    assert ">체험하기</button>" in page and ">코드 보기</summary>" in page and ">이 실행을 결과로 남기기<" in page
    texts = re.search(r'<script id="recipe-texts" type="application/json">(.*?)</script>', page)
    assert texts is not None
    script_texts = json.loads(texts.group(1))
    assert script_texts["running"] == "실행 중: %(total)s단계 중 %(done)s단계 완료"
    assert script_texts["statuses"]["succeeded"] == "성공" and script_texts["done"] == "완료: %(done)s단계"

    run = client.post(
        f"/usecases/{slug}/runs",
        json.dumps({"inputs": {"message": "요금이 두 번 청구됐어요."}}),
        content_type="application/json",
        **KOREAN,
    ).json()
    assert [(s["title"], s["status_text"]) for s in run["steps"]] == [
        ("답변", "대기열에 있음"),
        ("감정", "대기"),
        ("상담 메모", "대기"),
        ("핵심 내용", "대기"),
    ]
    english = client.get(run["url"], HTTP_ACCEPT_LANGUAGE="en").json()
    assert [s["title"] for s in english["steps"]] == ["Reply", "Emotion", "Counsellor's note", "Key points"]
    assert english["steps"][1]["status_text"] == "waiting"
    assert english["input_rows"] == [{"label": "Customer message", "value": "요금이 두 번 청구됐어요."}]

    playground = client.get("/playground/", **KOREAN).content.decode()
    texts = re.search(r'<script id="playground-texts" type="application/json">(.*?)</script>', playground)
    assert texts is not None and json.loads(texts.group(1))["submitting"] == "제출하는 중…"
