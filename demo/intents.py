"""Demo intents with examples we wrote for Trailhead Outfitters."""

DEMO_INTENTS: dict[str, list[str]] = {
    "greeting": [
        "hi", "hello", "hey there", "good morning", "hi, anyone there?", "hello, I have a question",
        "good evening", "hey", "hiya", "greetings",
    ],
    "goodbye": [
        "bye", "thanks, that's all", "goodbye", "that answers it, thank you", "see you", "thanks for the help, bye",
        "ok thanks", "perfect, cheers", "that's everything", "have a nice day",
    ],
    "order_status": [
        "where is my order", "has my order shipped yet", "tracking number for my parcel",
        "my package hasn't arrived", "when will my delivery come", "track my order",
        "the tracking hasn't updated in days", "is my parcel lost", "order status please",
        "how long does shipping take",
    ],
    "refund": [
        "I want a refund", "how do I return this jacket", "can I get my money back",
        "when will I get my refund", "return policy", "I'd like to send these boots back",
        "refund hasn't arrived", "how long do returns take", "start a return", "exchange for another size",
    ],
    "pricing": [
        "how much is membership", "what does it cost", "price of renting skis", "is shipping free",
        "do members get a discount", "how much is express delivery", "membership fee",
        "are there any sales coming", "what's the price", "rental prices",
    ],
    "account_access": [
        "I can't log in", "forgot my password", "my account is locked", "reset link expired",
        "can't sign in", "change the email on my account", "password reset isn't arriving",
        "locked out of my account", "how do I reset my password", "login doesn't work",
    ],
    "technical_support": [
        "the website keeps crashing", "checkout page shows an error", "the app won't load",
        "payment page is broken", "I get an error when I pay", "the site is really slow",
        "can't add items to my cart", "promo code doesn't work", "the page won't load", "error 500 at checkout",
    ],
    "complaint": [
        "this is unacceptable", "worst service ever", "I'm very disappointed", "I want to complain",
        "you charged me twice", "your delivery driver was rude", "this is the third time I'm writing",
        "the product broke after one day", "I'm fed up with this", "terrible experience",
    ],
    "human_request": [
        "I want to talk to a human", "can I speak to a person", "get me an agent", "real person please",
        "connect me to customer service", "let me talk to someone", "transfer me to a human",
        "I need a representative", "speak to a manager", "stop the bot, I want a person",
    ],
    "warranty": [
        "my tent pole snapped", "the zipper broke", "is this covered by warranty", "my backpack strap tore",
        "warranty claim", "can you repair my jacket", "the stove stopped working", "defective item",
        "the sole came off my boot", "lifetime warranty question",
    ],
}  # fmt: skip
