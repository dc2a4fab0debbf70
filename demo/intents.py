# Chinese examples use Chinese punctuation on purpose.
# ruff: noqa: RUF001
"""Demo intents with examples we wrote for Trailhead Outfitters, in English and Simplified Chinese
(the Chinese ones in ZH_EXAMPLES, joined in below)."""

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
        "your delivery driver was rude", "this is the third time I'm writing",
        "the product broke after one day", "I'm fed up with this", "terrible experience",
    ],
    "billing_dispute": [
        "you charged me twice", "I was charged twice for my order", "there is a double charge on my card",
        "I was billed for an order I cancelled", "there's a charge I don't recognise", "you took the money twice",
        "the amount charged is wrong", "I paid but you charged me again", "dispute a charge",
        "why was my card charged two times",
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

# Chinese customers are classified from Chinese examples (the classifier's character n-grams).
ZH_EXAMPLES: dict[str, list[str]] = {
    "greeting": ["你好", "您好，在吗", "早上好", "你好，我有个问题", "嗨", "晚上好", "有人吗", "你好呀"],
    "goodbye": [
        "再见",
        "好的，谢谢，没别的了",
        "拜拜",
        "就这些，谢谢",
        "好的，再见",
        "没问题了，谢谢",
        "明白了，拜拜",
        "祝你愉快，再见",
    ],
    "order_status": [
        "我的订单什么时候到",
        "我的包裹到哪里了",
        "订单发货了吗",
        "查一下我的订单",
        "快递还没到",
        "订单状态查询",
        "我的快递到哪了",
        "物流一直没更新",
        "包裹是不是丢了",
    ],
    "refund": [
        "我要退款",
        "怎么退货",
        "退款什么时候到账",
        "我想换一个尺码",
        "钱能退回来吗",
        "退货流程是什么",
        "我想把鞋子退了",
        "退款还没收到",
    ],
    "pricing": [
        "会员多少钱",
        "运费多少",
        "租滑雪板多少钱",
        "有折扣吗",
        "价格是多少",
        "加急配送多少钱",
        "会员费是多少",
        "最近有促销吗",
    ],
    "account_access": [
        "我登录不了",
        "忘记密码了",
        "账号被锁了",
        "重置密码的邮件没收到",
        "登不上去",
        "密码重置链接过期了",
        "怎么改密码",
        "账户登录失败",
    ],
    "technical_support": [
        "网站打不开",
        "付款页面报错",
        "结账的时候出错",
        "优惠码用不了",
        "页面一直加载不出来",
        "购物车加不了商品",
        "网站很卡",
        "付款的时候报错",
    ],
    "complaint": [
        "太差劲了",
        "我要投诉",
        "服务太糟糕了",
        "我非常失望",
        "你们的服务太差了",
        "快递员态度很差",
        "这是我第三次联系你们了",
        "产品用一天就坏了",
    ],
    "billing_dispute": [
        "你们扣了我两次钱",
        "重复扣款",
        "这笔扣款我不认识",
        "金额扣错了",
        "同一个订单扣了两次款",
        "取消的订单还扣钱了",
        "信用卡被多扣了钱",
        "我要对这笔扣款提出异议",
    ],
    "human_request": [
        "转人工",
        "我要找真人客服",
        "让我和人工客服说话",
        "不要机器人",
        "我要人工服务",
        "帮我转接客服",
        "找个真人跟我说",
        "我不想跟机器人聊",
    ],
    "warranty": [
        "帐篷杆断了",
        "拉链坏了",
        "这个在保修范围内吗",
        "我想申请保修",
        "背包带子断了",
        "炉子不能用了",
        "鞋底掉了",
        "可以帮我修一下外套吗",
    ],
}
for _intent, _texts in ZH_EXAMPLES.items():
    DEMO_INTENTS[_intent].extend(_texts)
