"""The founding members of the alliance and their showcases."""

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
        "example_input": {"prompt": "golden daisies on a deep blue field"},
        "featured": True,
    },
    {
        "title": "A counselling customer-service chatbot",
        "partner": "lg-uplus",
        "sector": "telecom",
        "capabilities": ["dialogue", "text_classification", "summarization", "keyword_extraction"],
        "summary": "Understands the emotion in a customer's words and summarises each call like a counsellor.",
        "story": "The chatbot reads how a caller feels as well as what they ask, answers in kind, and leaves the "
        "agent a counsellor's summary of the call with its key points.",
        "example_input": {
            "text": "I have called three times about my bill and nobody has fixed the double charge "
            "on my roaming plan. I am really frustrated.",
            "top_k": 5,
        },
        "featured": True,
    },
    {
        "title": "Deep Document Understanding of chemistry papers",
        "partner": "elsevier",
        "sector": "education",
        "capabilities": ["question_answering", "keyword_extraction", "summarization"],
        "summary": "Reads chemistry papers with a publisher: finds the key materials, answers questions, summarises.",
        "story": "DDU reads papers the way a chemist does: it pulls out materials, conditions and results, so a "
        "researcher can ask a question across thousands of papers.",
        "example_input": {
            "text": "Lithium iron phosphate cathodes coated with carbon nanotubes retained 95% of "
            "their capacity after 2,000 cycles at room temperature.",
            "top_k": 5,
        },
        "featured": False,
    },
    {
        "title": "An AI banker tuned on finance language",
        "partner": "woori-bank",
        "sector": "finance",
        "capabilities": ["dialogue", "text_classification"],
        "summary": "A banking assistant tuned on the bank's own finance language, with its data kept private.",
        "story": "Tuned with the platform's parameter-efficient method on the bank's own documents, the AI banker "
        "answers customers in the bank's terms; the data never leaves the bank's tenancy.",
        "example_input": {
            "text": "What is the early repayment fee on a fixed-rate mortgage?",
            "labels": ["loans", "deposits", "cards", "fraud"],
        },
        "featured": False,
    },
]
