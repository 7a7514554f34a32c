"""The founding members of the alliance and their showcases. A showcase's `recipe` is what "Try it" runs
(usecases.recipes); its `recordings` are the inputs (over the recipe's examples) of the runs the platform records as
its results (`manage.py record_showcases`: real jobs, run by the workers in the background)."""

from __future__ import annotations

FOUNDING_PARTNERS: list[dict] = [
    {
        "name": "LG AI Research",
        "sector": "it",
        "tier": "lab",
        "country": "KR",
        "website": "https://www.lgresearch.ai",
        "description": "The lab behind the alliance's foundation models.",
    },
    {
        "name": "Google",
        "sector": "it",
        "country": "US",
        "website": "https://about.google",
        "description": "Global IT partner.",
    },
    {
        "name": "Woori Bank",
        "sector": "finance",
        "country": "KR",
        "website": "https://www.wooribank.com",
        "description": "Banking partner building an AI banker.",
    },
    {
        "name": "Shutterstock",
        "sector": "content",
        "country": "US",
        "website": "https://www.shutterstock.com",
        "description": "Content and IT partner: images and their descriptions.",
    },
    {
        "name": "Elsevier",
        "sector": "education",
        "country": "NL",
        "website": "https://www.elsevier.com",
        "description": "Publishing and education partner: deep document understanding of papers.",
    },
    {
        "name": "EBS",
        "sector": "education",
        "country": "KR",
        "website": "https://www.ebs.co.kr",
        "description": "Educational broadcasting.",
    },
    {
        "name": "Korea University Medical Center",
        "sector": "medical",
        "country": "KR",
        "website": "https://kumc.or.kr",
        "description": "Medical partner.",
    },
    {
        "name": "Hanyang University Hospital",
        "sector": "medical",
        "country": "KR",
        "website": "https://seoul.hyumc.com",
        "description": "Medical partner.",
    },
    {
        "name": "VA Corporation",
        "sector": "content",
        "country": "KR",
        "website": "https://www.vacorp.co.kr",
        "description": "Content production partner.",
    },
    {
        "name": "LG Electronics",
        "sector": "manufacturing",
        "country": "KR",
        "website": "https://www.lg.com",
        "description": "Manufacturing partner.",
    },
    {
        "name": "LG Chem",
        "sector": "manufacturing",
        "country": "KR",
        "website": "https://www.lgchem.com",
        "description": "Chemicals partner: reading chemistry papers at scale.",
    },
    {
        "name": "LG Uplus",
        "sector": "telecom",
        "country": "KR",
        "website": "https://www.lguplus.com",
        "description": "Telecom partner: customer-service AI.",
    },
    {
        "name": "LG CNS",
        "sector": "it",
        "country": "KR",
        "website": "https://www.lgcns.com",
        "description": "IT services partner.",
    },
]

SHOWCASES: list[dict] = [
    {
        "title": "Tilda, the AI fashion artist",
        "partner": "lg-ai-research",
        "sector": "content",
        "capabilities": ["image_generation", "text_generation"],
        "summary": "An AI artist that designs fashion patterns from a few words, shown at New York Fashion Week.",
        "story": "Tilda turns a designer's words into seamless patterns for fabric. The collection it drew "
        "with a human designer walked the runway at New York Fashion Week.",
        "title_ko": "패션 디자인 AI 아티스트, 틸다",
        "summary_ko": "몇 마디 말로 패션 패턴을 디자인하는 AI 아티스트로, 뉴욕 패션위크에서 선보였습니다.",
        "story_ko": "틸다는 디자이너의 말을 원단에 쓸 수 있는 이음매 없는 패턴으로 바꿉니다. 인간 디자이너와 함께 그린 "
        "컬렉션이 뉴욕 패션위크 런웨이에 올랐습니다.",
        "example_input": {"prompt": "golden daisies on a deep blue field"},
        "featured": True,
        "recipe": {
            "inputs": [
                {
                    "name": "prompt",
                    "label": "Fashion prompt",
                    "label_ko": "패션 프롬프트",
                    "example": "golden daisies on a deep blue field",
                }
            ],
            "steps": [
                {
                    "id": "pattern",
                    "title": "Pattern",
                    "title_ko": "패턴",
                    "capability": "image_generation",
                    "input": {"prompt": "{{input.prompt}}"},
                    "params": {"seed": 7},
                }
            ],
        },
        "recordings": [
            {"prompt": "golden daisies on a deep blue field"},
            {"prompt": "honeycomb with bees, amber and black"},
            {"prompt": "monarch butterflies on cream silk"},
        ],
    },
    {
        "title": "A counselling customer-service chatbot",
        "partner": "lg-uplus",
        "sector": "telecom",
        "capabilities": ["dialogue", "text_classification", "summarization", "keyword_extraction"],
        "summary": "Understands the emotion in a customer's words and summarises each call like a counsellor.",
        "story": "The chatbot reads how a caller feels as well as what they ask, answers in kind, and leaves the "
        "agent a counsellor's summary of the call with its key points.",
        "title_ko": "고객의 마음을 읽는 상담 챗봇",
        "summary_ko": "고객의 말에 담긴 감정을 이해하고, 통화마다 상담사처럼 요약합니다.",
        "story_ko": "챗봇은 고객이 무엇을 묻는지뿐 아니라 어떤 기분인지도 읽고 그에 맞게 답합니다. 통화가 끝나면 "
        "상담원에게 핵심 내용을 담은 상담 요약을 남깁니다.",
        "example_input": {
            "text": "I have called three times about my bill and nobody has fixed the double charge "
            "on my roaming plan. I am really frustrated.",
            "top_k": 5,
        },
        "featured": True,
        "recipe": {
            "inputs": [
                {
                    "name": "message",
                    "label": "Customer message",
                    "label_ko": "고객 메시지",
                    "example": "I have called three times about my bill and nobody has fixed the double charge on my "
                    "roaming plan. I am really frustrated.",
                }
            ],
            "steps": [
                {
                    "id": "reply",
                    "title": "Reply",
                    "title_ko": "답변",
                    "capability": "dialogue",
                    "input": {
                        "messages": [
                            {
                                "role": "system",
                                "content": "You are a caring customer-service counsellor at a telecom company. "
                                "Acknowledge how the customer feels, then say what you will do next. Two sentences. "
                                "고객의 감정을 먼저 공감하고, 다음에 할 일을 말하세요. 고객과 같은 언어로 답하세요.",
                            },
                            {"role": "user", "content": "{{input.message}}"},
                        ]
                    },
                    "params": {"max_new_tokens": 80, "temperature": 0.0},
                },
                {
                    "id": "emotion",
                    "title": "Emotion",
                    "title_ko": "감정",
                    "capability": "text_classification",
                    "input": {
                        "text": "{{input.message}}",
                        "labels": ["frustrated", "worried", "satisfied", "confused"],
                    },
                },
                {
                    "id": "note",
                    "title": "Counsellor's note",
                    "title_ko": "상담 메모",
                    "capability": "summarization",
                    "input": {"text": "Customer: {{input.message}}\nAgent: {{steps.reply.output.message.content}}"},
                    "params": {"max_sentences": 2},
                },
                {
                    "id": "keywords",
                    "title": "Key points",
                    "title_ko": "핵심 내용",
                    "capability": "keyword_extraction",
                    "input": {"text": "{{input.message}}", "top_k": 5},
                },
            ],
        },
        "recordings": [{}],
    },
    {
        "title": "Deep Document Understanding of chemistry papers",
        "partner": "elsevier",
        "sector": "education",
        "capabilities": ["question_answering", "keyword_extraction", "summarization"],
        "summary": "Reads chemistry papers with a publisher: finds the key materials, answers questions, summarises.",
        "story": "DDU reads papers the way a chemist does: it pulls out materials, conditions and results, so a "
        "researcher can ask a question across thousands of papers.",
        "title_ko": "화학 논문 심층 문서 이해(DDU)",
        "summary_ko": "출판사와 함께 화학 논문을 읽고 핵심 소재를 찾아내며, 질문에 답하고 내용을 요약합니다.",
        "story_ko": "DDU는 화학자처럼 논문을 읽습니다. 소재, 조건, 결과를 뽑아내어 연구자가 수천 편의 논문에 걸쳐 "
        "질문할 수 있게 합니다.",
        "example_input": {
            "text": "Lithium iron phosphate cathodes coated with carbon nanotubes retained 95% of "
            "their capacity after 2,000 cycles at room temperature.",
            "top_k": 5,
        },
        "featured": False,
        "recipe": {
            "inputs": [
                {
                    "name": "question",
                    "label": "Question",
                    "label_ko": "질문",
                    "example": "How much capacity did the coated cathodes retain?",
                },
                {
                    "name": "abstract",
                    "label": "Abstract",
                    "label_ko": "초록",
                    "example": "Lithium iron phosphate (LFP) cathodes were coated with multi-walled carbon nanotubes "
                    "by a solvent-free dry process. The coated cathodes retained 95% of their capacity after 2,000 "
                    "cycles at room temperature, against 81% for uncoated LFP, and delivered 142 mAh/g at a 5C rate. "
                    "Impedance spectroscopy showed the coating halved the charge-transfer resistance.",
                },
            ],
            "steps": [
                {
                    "id": "answer",
                    "title": "Answer",
                    "title_ko": "답",
                    "capability": "question_answering",
                    "input": {"question": "{{input.question}}", "context": "{{input.abstract}}"},
                },
                {
                    "id": "materials",
                    "title": "Key materials",
                    "title_ko": "핵심 소재",
                    "capability": "keyword_extraction",
                    "input": {"text": "{{input.abstract}}", "top_k": 5},
                },
            ],
        },
        "recordings": [{}],
    },
    {
        "title": "An AI banker tuned on finance language",
        "partner": "woori-bank",
        "sector": "finance",
        "capabilities": ["dialogue", "text_classification"],
        "summary": "A banking assistant tuned on the bank's own finance language, with its data kept private.",
        "story": "Tuned with the platform's parameter-efficient method on the bank's own documents, the AI banker "
        "answers customers in the bank's terms; the data never leaves the bank's tenancy.",
        "title_ko": "금융 언어로 튜닝한 AI 은행원",
        "summary_ko": "은행 고유의 금융 언어로 튜닝한 뱅킹 어시스턴트이며, 데이터는 비공개로 보호됩니다.",
        "story_ko": "플랫폼의 파라미터 효율적 튜닝으로 은행 자체 문서를 학습한 AI 은행원은 은행의 용어로 고객에게 "
        "답합니다. 데이터는 은행의 테넌시 밖으로 나가지 않습니다.",
        "example_input": {
            "text": "What is the early repayment fee on a fixed-rate mortgage?",
            "labels": ["loans", "deposits", "cards", "fraud"],
        },
        "featured": False,
        "recipe": {
            "inputs": [
                {
                    "name": "question",
                    "label": "Customer question",
                    "label_ko": "고객 질문",
                    "example": "What is the early repayment fee on a fixed-rate mortgage?",
                }
            ],
            "steps": [
                {
                    "id": "topic",
                    "title": "Banking topic",
                    "title_ko": "은행 업무 주제",
                    "capability": "text_classification",
                    "input": {"text": "{{input.question}}", "labels": ["loans", "deposits", "cards", "fraud"]},
                }
            ],
        },
        # The bank's own classifier, tuned on usecases/data/banker_intents.jsonl (56 customer questions, 4 topics; a
        # quarter held out): its recordings run with the tuned model in place of the zero-shot step above.
        "tuning": {
            "dataset": "banker_intents.jsonl",
            "task": "classification",
            "hyperparameters": {"validation_fraction": 0.25, "seed": 0},
        },
        "recordings": [
            {"question": "What is the early repayment fee on a fixed-rate mortgage?"},
            {"question": "I see two card payments in Busan that I never made."},
            {"question": "How much interest will a two-year time deposit pay?"},
        ],
    },
]
