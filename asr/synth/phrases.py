"""Generated sentences people say to machines and each other: commands, questions, numbers, digit strings,
times, dates, spelled letters and short phrases, every number written out in words (PyPI ``num2words``).

Each *source* (:data:`GENERATED_SOURCES`) is a list of templates. A template is text with ``{slot}`` marks;
a slot is a tuple of choices or a function of the random generator, and a chosen value may hold slots of its
own (filled in turn). :func:`generate` draws from a source's templates with a generator seeded by the source's
name alone, so the sentences are a pure function of ``(source, limit)``, and a larger limit gives the smaller
limit's sentences first. Output is lower case words and apostrophes separated by single spaces (no digits,
no punctuation); :mod:`asr.synth.text` normalises it, checks every word against CMUdict (an unknown word is an
error in a template, never dropped) and splits it into train / dev / test by the same hash as every sentence.

Templates can produce sentences of the real-speech reference sets (``go forward ten meters``,
``two nine three four zero``): the text module removes those from the training pool (its exclusion list).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from functools import partial

from num2words import num2words

__all__ = [
    "GENERATED_SOURCES",
    "digit_words",
    "generate",
    "number_words",
    "ordinal_words",
    "template_words",
    "year_words",
]

_SLOT = re.compile(r"\{(\w+)\}")
_MAX_DEPTH = 8  # slots inside slot values, at most this deep (a loop in the tables is an error)
_DRAWS_PER_SENTENCE = 50  # draws allowed per requested sentence before a source counts as exhausted

Slot = tuple[str, ...] | Callable[[random.Random], str]

# ------------------------------------------------------------------------------------------ numbers in words

_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _words_of(text: str) -> str:
    """num2words' text as plain words: hyphens and commas become spaces."""
    return " ".join(re.sub(r"[-,]", " ", text).split())


def number_words(n: int, *, american: bool = False) -> str:
    """``n`` in words (``115`` -> ``one hundred and fifteen``; ``american`` drops the ``and``)."""
    words = _words_of(num2words(n))
    if american and n >= 100:
        words = " ".join(w for w in words.split() if w != "and") or words
    return words


def ordinal_words(n: int) -> str:
    """``21`` -> ``twenty first``."""
    return _words_of(num2words(n, to="ordinal"))


def year_words(year: int) -> str:
    """``1999`` -> ``nineteen ninety nine``, ``2005`` -> ``two thousand and five``."""
    return _words_of(num2words(year, to="year"))


def digit_words(digits: str, *, zero: str = "zero") -> str:
    """A digit string said digit by digit (``"29340"`` -> ``two nine three four zero``); ``zero="oh"`` says 0
    the way phone numbers are read."""
    if not digits.isdigit():
        raise ValueError(f"digit_words expects decimal digits only, got {digits!r}")
    return " ".join(zero if d == "0" else _DIGITS[int(d)] for d in digits)


def _some_number(rng: random.Random) -> str:
    """A cardinal, small numbers most often (people say 'five' far more than 'eight thousand and twelve')."""
    band = rng.random()
    if band < 0.35:
        n = rng.randint(0, 20)
    elif band < 0.65:
        n = rng.randint(21, 99)
    elif band < 0.85:
        n = rng.randint(100, 999)
    elif band < 0.96:
        n = rng.randint(1000, 9999)
    else:
        n = rng.randint(10_000, 2_000_000)
    return number_words(n, american=rng.random() < 0.5)


def _count(lo: int, hi: int, rng: random.Random) -> str:
    return number_words(rng.randint(lo, hi))


def _ordinal(lo: int, hi: int, rng: random.Random) -> str:
    return ordinal_words(rng.randint(lo, hi))


def _year(rng: random.Random) -> str:
    return year_words(rng.randint(1900, 2039) if rng.random() < 0.9 else rng.randint(1066, 1899))


def _digit_string(lo: int, hi: int, rng: random.Random) -> str:
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(lo, hi)))
    words = digit_words(digits, zero="oh" if rng.random() < 0.3 else "zero").split()
    if rng.random() < 0.15:  # "double five" for a repeated digit, as people read numbers out
        for i in range(len(words) - 1):
            if words[i] == words[i + 1]:
                words[i : i + 2] = ["double", words[i]]
                break
    return " ".join(words)


def _clock(rng: random.Random) -> str:
    """A clock time as said: 'five thirty', 'ten oh five', 'seven o'clock', 'quarter to nine', 'noon'."""
    hour, minute = rng.randint(1, 12), rng.choice((0, 0, 5, 10, 15, 15, 20, 25, 30, 30, 40, 45, 45, 50, 55))
    minute = rng.randint(0, 59) if rng.random() < 0.25 else minute
    h = number_words(hour)
    style = rng.random()
    if minute == 0:
        if style < 0.08:
            return rng.choice(("noon", "midnight"))
        return f"{h} o'clock" if style < 0.7 else h
    if style < 0.6:
        return f"{h} oh {number_words(minute)}" if minute < 10 else f"{h} {number_words(minute)}"
    nxt = number_words(hour % 12 + 1)
    if minute == 30:
        return f"half past {h}"
    if minute in (15, 45):
        return f"quarter past {h}" if minute == 15 else f"quarter to {nxt}"
    if minute < 30:
        return f"{number_words(minute)} {'minutes ' if minute % 5 else ''}past {h}"
    return f"{number_words(60 - minute)} {'minutes ' if minute % 5 else ''}to {nxt}"


def _money(rng: random.Random) -> str:
    unit = rng.choice(("dollar", "dollar", "pound", "euro"))
    amount = rng.choice((rng.randint(1, 20), rng.randint(1, 100), rng.randint(100, 5000)))
    words = f"{number_words(amount, american=unit == 'dollar')} {unit}{'s' if amount != 1 else ''}"
    if rng.random() < 0.4:
        cents = rng.randint(1, 99)
        if unit == "pound" and rng.random() < 0.5:
            return f"{words} {number_words(cents)}"
        return f"{words} and {number_words(cents)} cent{'s' if cents != 1 else ''}"
    return words


def _sum(rng: random.Random) -> str:
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    op = rng.choice(("plus", "times", "minus"))
    value = a + b if op == "plus" else a * b if op == "times" else a - b
    result = number_words(value) if value >= 0 else f"minus {number_words(-value)}"
    return f"{number_words(a)} {op} {number_words(b)} {rng.choice(('is', 'equals'))} {result}"


def _spelled(rng: random.Random) -> str:
    """Letters said one by one: a random string, or a word from the tables spelled out."""
    if rng.random() < 0.5:
        letters = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 6)))
    else:
        letters = rng.choice(_SPELLABLE)
    return " ".join(letters)


# ------------------------------------------------------------------------------------------------- the tables

_SLOTS: dict[str, Slot] = {
    # numbers
    "n": _some_number,
    "few": partial(_count, 2, 12),
    "small": partial(_count, 1, 100),
    "dist": partial(_count, 2, 100),
    "nth": partial(_ordinal, 1, 5),
    "day_nth": partial(_ordinal, 1, 31),
    "floor_nth": partial(_ordinal, 1, 40),
    "year": _year,
    "digits": partial(_digit_string, 3, 10),
    "phone": partial(_digit_string, 7, 11),
    "pin": partial(_digit_string, 4, 6),
    "clock": _clock,
    "money": _money,
    "sum": _sum,
    "spelled": _spelled,
    "minutes": partial(_count, 2, 90),
    "percent": partial(_count, 1, 100),
    "degrees": partial(_count, 0, 40),
    # words
    "side": ("left", "right"),
    "where_turn": ("corner", "intersection", "junction", "traffic lights", "lights", "roundabout", "crossing",
                   "street", "road", "church", "gas station", "bridge", "stop sign"),
    "dir": ("forward", "back", "backward", "ahead", "straight ahead", "up", "down", "left", "right"),
    "compass": ("north", "south", "east", "west", "northeast", "southwest"),
    "unit_len": ("meters", "feet", "steps", "yards", "miles", "kilometers", "blocks", "inches", "centimeters"),
    "unit_time": ("minutes", "seconds", "hours"),
    "place": ("station", "train station", "bus stop", "airport", "hospital", "pharmacy", "supermarket", "bank",
              "library", "museum", "post office", "hotel", "restaurant", "school", "park", "beach", "office",
              "gas station", "parking lot", "city center", "bakery", "stadium", "car park", "exit"),
    "person": ("mom", "dad", "grandma", "grandpa", "my wife", "my husband", "my sister", "my brother",
               "the doctor", "the office", "the dentist", "my boss", "john", "mary", "david", "sarah", "michael",
               "emma", "james", "linda", "robert", "lisa", "peter", "anna", "paul", "susan", "mark", "karen",
               "tom", "jane", "chris", "kate", "steve", "amy", "daniel", "laura", "alex", "maria", "kevin",
               "julie", "george", "helen", "frank", "alice", "jack", "rachel", "sam", "lucy", "ben", "joe",
               "olivia", "emily", "mike", "sophie", "grace", "henry", "oliver", "noah", "harry", "jacob"),
    "when": ("at {clock}", "at {clock}", "tomorrow", "tomorrow morning", "tonight", "this afternoon",
             "on {weekday}", "next {weekday}", "in {minutes} minutes", "later", "in an hour", "after lunch"),
    "task": ("buy milk", "call the bank", "pick up the kids", "take my pills", "water the plants",
             "feed the cat", "walk the dog", "pay the rent", "send the report", "book a table", "charge my phone",
             "buy a present for {person}", "check the oven", "lock the back door", "cancel the meeting",
             "bring an umbrella", "take out the trash", "renew my passport", "email {person}"),
    "music": ("some music", "the next song", "my playlist", "the radio", "something relaxing", "the news",
              "some jazz", "the previous track", "the last song again", "the podcast", "classical music"),
    "room": ("kitchen", "bedroom", "bathroom", "living room", "hallway", "office", "garage", "basement",
             "dining room", "garden"),
    "device": ("lights", "heating", "fan", "radio", "television", "tv", "lamp", "oven", "air conditioning",
               "dishwasher", "washing machine", "alarm"),
    "opening": ("door", "front door", "back door", "window", "garage door", "gate", "curtains", "blinds"),
    "thing": ("keys", "wallet", "phone", "glasses", "umbrella", "jacket", "shoes", "bag", "charger",
              "remote", "laptop", "book", "cup", "bottle", "box", "ball", "pen", "hat"),
    "surface": ("table", "desk", "shelf", "floor", "chair", "bed", "counter", "sofa"),
    "grocery": ("milk", "eggs", "bread", "butter", "cheese", "apples", "bananas", "coffee", "tea", "rice",
                "pasta", "tomatoes", "onions", "potatoes", "chicken", "sugar", "juice", "orange juice"),
    "weekday": ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    "month": ("january", "february", "march", "april", "may", "june", "july", "august", "september",
              "october", "november", "december"),
    "part_of_day": ("morning", "afternoon", "evening", "night"),
    "vehicle": ("train", "bus", "flight", "ferry", "tram", "plane", "boat"),
    "city": ("london", "paris", "boston", "chicago", "new york", "seattle", "denver", "dallas", "berlin",
             "madrid", "rome", "tokyo", "toronto", "dublin", "sydney", "miami", "atlanta", "houston"),
    "you": ("you", "you", "we", "they"),
    "verb_phrase": ("help me", "call me back", "open the window", "close the door", "turn it off",
                    "turn it up", "come with us", "wait a minute", "see the screen", "hear me", "read it again",
                    "speak more slowly", "give me a hand", "pick me up", "send it today", "find my keys",
                    "fix the car", "stay for dinner", "make it on time", "lend me a pen", "go to the store"),
    "adj": ("red", "blue", "green", "black", "white", "big", "small", "old", "new", "little", "long", "short",
            "hot", "cold", "good", "bad", "nice", "quiet", "loud", "empty", "full", "heavy", "light"),
    "noun": ("car", "house", "dog", "cat", "door", "box", "book", "bag", "chair", "table", "window", "road",
             "tree", "phone", "cup", "coat", "shirt", "bike", "train", "ball", "key", "room", "one"),
    "det": ("the", "a", "my", "your", "this", "that", "our", "his", "her"),
    "det_adj": ("the", "my", "your", "this", "that", "our", "his", "her"),
    "nouns": ("cars", "houses", "dogs", "cats", "doors", "boxes", "books", "bags", "chairs", "tables", "windows",
              "trees", "phones", "cups", "people", "children", "apples", "tickets", "eggs", "bottles"),
    "nato": ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
             "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
             "uniform", "victor", "whiskey", "x ray", "yankee", "zulu"),
}

_SPELLABLE = ("cat", "dog", "yes", "no", "stop", "help", "home", "john", "mary", "smith", "brown", "jones",
              "taylor", "paris", "london", "hello", "world", "seven", "table", "phone", "email", "box", "quiz")

# One spelling per sound: "okay" (not "ok"), "all right" (not "alright"), so a transcript never disagrees with itself.
_CONVERSATION = (
    "yes", "no", "stop", "okay", "go", "wait", "cancel", "help", "hello", "hi", "hey", "goodbye", "bye",
    "thank you", "thanks", "please", "sorry", "excuse me", "of course", "sure", "maybe", "not now",
    "never mind", "good morning", "good afternoon", "good evening", "good night", "see you later",
    "see you tomorrow", "i don't know", "i'm fine", "all right", "that's right", "that's wrong",
    "got it", "come here", "go away", "hurry up", "be careful", "look out", "watch out", "let's go", "me too",
    "no thanks", "yes please", "right now", "just a minute", "hold on", "what", "why", "where", "who", "when",
    "how", "really", "great", "nice", "perfect", "exactly", "absolutely", "definitely", "no way", "oh no",
    "well done", "good job", "happy birthday", "congratulations", "welcome", "bless you", "cheers", "pardon",
    "say again", "repeat that", "louder", "quieter", "faster", "slower", "next", "previous", "back", "again",
    "pause", "play", "resume", "skip", "mute", "done", "finished", "ready", "start", "begin", "end",
    "open", "close", "up", "down", "left", "right", "forward", "reverse", "enter", "delete", "undo", "save",
    "send", "answer", "hang up", "call back", "not yet", "almost", "sometimes", "never", "always", "of course not",
    "i think so", "i hope so", "i guess so", "no problem", "you're welcome", "how are you", "nice to meet you",
    "what's up", "what happened", "i agree", "i disagree", "me neither", "good luck", "take care",
    "have a nice day", "sit down", "stand up", "come in", "go home", "wait for me", "follow me", "listen",
    "look", "quiet please", "one moment", "over here", "over there", "right here", "this one", "that one",
    "the other one", "both", "neither", "either", "all of them", "none of them", "a little", "a lot",
)

_SOURCES: dict[str, tuple[str, ...]] = {
    "commands": (
        "turn {side} at the {nth} {where_turn}", "turn {side} at the {where_turn}", "turn {side}",
        "go {dir} {dist} {unit_len}", "go {dir} {dist} {unit_len}", "move {dir} {few} {unit_len}",
        "take the {nth} exit", "take the {nth} {side}", "keep {side}", "keep going straight",
        "{head} {compass} for {few} {unit_len}", "stop at the {place}", "park near the {place}",
        "navigate to the nearest {place}", "take me to the {place}", "drive to {city}",
        "rotate {dist} degrees to the {side}", "back up {few} {unit_len}", "pull over on the {side}",
        "make a u turn", "follow the signs to the {place}", "turn around", "slow down", "speed up",
        "call {person}", "call {person} {when}", "text {person} that i'm on my way",
        "tell {person} i'll be late", "send a message to {person}", "set a timer for {minutes} {unit_time}",
        "set an alarm for {clock}", "wake me up at {clock}", "remind me to {task} {when}",
        "remind me to {task}", "play {music}", "{pause} the music", "turn the volume {updown}",
        "turn {onoff} the {room} {device}", "turn {onoff} the {device}", "set the thermostat to {degrees} degrees",
        "{openclose} the {opening}", "add {grocery} to my shopping list", "cancel my {appointment}",
        "read my messages", "take a picture", "dim the lights to {percent} percent", "pick up the {thing}",
        "put the {thing} on the {surface}", "bring me the {thing}", "hand me my {thing}",
        "clean the {room}", "find my {thing}", "book a table for {few} {when}", "call {phone}",
        "dial {phone}", "book a {vehicle} to {city}", "schedule a meeting {when}",
    ),
    "questions": (
        "what time is it", "what's the weather like {day}", "is it going to {weather} {day}",
        "how far is it to the {place}", "how long does it take to get to the {place}",
        "where is the nearest {place}", "when does the next {vehicle} to {city} leave",
        "when does the {place} {openclose_v}", "how much is the {thing}", "how much does it cost",
        "who called {when_past}", "what day is it today", "what's the date today", "how do i get to the {place}",
        "what are you doing {when_future}", "where did you put the {thing}", "where are my {thing}",
        "which {vehicle} goes to {city}", "{can} {you} {verb_phrase}", "{do} {you} {verb_phrase}",
        "is the {place} open {day}", "are you {state}", "have you seen my {thing}", "should i {verb_phrase}",
        "shall we go to the {place}", "what time does the {vehicle} arrive", "is it {clock} already",
        "did you {verb_phrase}", "can you hear me", "how are you", "what did you say", "is that right",
        "what's your name", "how old are you", "where are you from", "what's the score",
        "how many {nouns} are there", "is this the {nth} floor", "what time is the meeting on {weekday}",
        "who is at the door", "why is the {noun} {adj}", "how cold is it outside", "do you want some {grocery}",
        "whose {thing} is this", "what's on my calendar {day}", "can i pay by card",
        "what time does the {place} {openclose_v}", "how long will it take to get to {city}",
        "is there a {place} near here", "where can i buy {grocery}", "can you tell me the way to the {place}",
        "how far is {city} from {city}", "did {person} call {when_past}", "when is {person} coming {when_future}",
        "is {person} {state}", "where is {person}", "can you call {person}", "how many {nouns} do we need",
        "do we have any {grocery}", "are there any {nouns} left", "what's the temperature {day}",
        "is it {degrees} degrees outside", "what time is it in {city}", "when is the {appointment}",
        "could you {verb_phrase} please", "is the {vehicle} to {city} on time", "which floor is the {place} on",
    ),
    "numbers": (
        "{n}", "{n}", "{dist} {unit_len}", "{money}", "{money}", "it costs {money}", "{percent} percent",
        "{degrees} degrees", "minus {few} degrees", "{few} point {digit1}", "{label} {small}",
        "the {floor_nth} floor", "the {nth} {noun}", "{nth} place", "{sum}", "{few} out of {small}",
        "about {n} people", "the score is {few} to {few}", "{few} {nouns}", "number {small}",
        "{dist} {unit_len}", "we need {few} more", "{fraction}", "give me {few}",
    ),
    "digits": (
        "{digits}", "{digits}", "{phone}", "my number is {phone}", "the code is {pin}", "my pin is {pin}",
        "extension {pin}", "account number {digits}", "the zip code is {pin}", "call {phone}",
        "room {pin}", "flight {pin}",
    ),
    "times": (
        "{clock}", "{clock}", "at {clock}", "it's {clock}", "{clock} in the {part_of_day}", "meet me at {clock}",
        "the meeting is at {clock}", "the train leaves at {clock}", "around {clock}", "before {clock}",
        "from {clock} to {clock}", "{few} hours and {minutes} minutes", "an hour and a half",
        "{minutes} minutes", "in {minutes} minutes", "{few} and a half hours", "by {clock} tonight",
    ),
    "dates": (
        "{month} {day_nth}", "{month} the {day_nth}", "the {day_nth} of {month}", "{weekday} the {day_nth}",
        "{weekday} {month} {day_nth}", "{month} {day_nth} {year}", "{month} {year}", "in {year}",
        "on {weekday}", "next {weekday}", "last {weekday}", "{weekday} {part_of_day}", "on the {day_nth}",
        "my birthday is on {month} {day_nth}", "the meeting is on {weekday} the {day_nth}",
        "it's due on the {day_nth}", "we leave on {weekday}", "born in {year}", "since {year}",
        "until {month} {day_nth}", "in {few} days", "{few} weeks ago", "the day after tomorrow", "{year}",
    ),
    "letters": (
        "{spelled}", "{spelled}", "{spelled}", "it's spelled {spelled}", "{letter}", "the letter {letter}",
        "{letter} as in {nato}", "{nato}", "{nato} {nato}", "{nato} {nato} {nato}",
        "{spelled} {digits_short}", "capital {letter}",
    ),
    "phrases": (
        "{conversation}", "{conversation}", "{conversation}", "{yesno} {tail}", "{det_adj} {adj} {noun}",
        "{det} {noun}", "the {adj} one", "{adj} {noun}",
    ),
}

_SLOTS.update(
    {
        "head": ("head", "drive", "walk", "go"),
        "pause": ("pause", "stop", "resume"),
        "updown": ("up", "down"),
        "onoff": ("on", "off"),
        "openclose": ("open", "close", "lock", "unlock"),
        "openclose_v": ("open", "close"),
        "appointment": ("appointment", "alarm", "meeting", "reservation", "order"),
        "day": ("today", "tomorrow", "tonight", "this weekend", "in {city}", "on {weekday}"),
        "weather": ("rain", "snow", "be sunny", "be cold", "be windy"),
        "when_past": ("today", "yesterday", "this morning", "last night"),
        "when_future": ("tonight", "tomorrow", "this weekend", "on {weekday}", "after work"),
        "can": ("can", "could", "will", "would"),
        "do": ("do", "did"),
        "state": ("ready", "sure", "okay", "coming", "busy", "at home", "still there", "awake"),
        "digit1": partial(_digit_string, 1, 2),
        "digits_short": partial(_digit_string, 1, 4),
        "label": ("page", "chapter", "room", "gate", "platform", "track", "channel", "bus", "level", "line"),
        "fraction": ("one half", "a half", "one third", "two thirds", "a quarter", "three quarters",
                     "one fifth", "three eighths"),
        "letter": tuple("abcdefghijklmnopqrstuvwxyz"),
        "conversation": _CONVERSATION,
        "yesno": ("yes", "no", "okay", "sure"),
        "tail": ("please", "thanks", "thank you", "of course", "not yet", "that's fine", "go ahead", "right away"),
    }
)

GENERATED_SOURCES: tuple[str, ...] = tuple(_SOURCES)


# ------------------------------------------------------------------------------------------------ generation


def _fill(template: str, rng: random.Random, depth: int = 0) -> str:
    if depth > _MAX_DEPTH:
        raise ValueError(f"template slots nest deeper than {_MAX_DEPTH}: {template!r}")

    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in _SLOTS:
            raise ValueError(f"template {template!r} names an unknown slot {{{name}}}")
        slot = _SLOTS[name]
        value = slot(rng) if callable(slot) else rng.choice(slot)
        return _fill(value, rng, depth + 1)

    return " ".join(_SLOT.sub(one, template).split())


def generate(source: str, *, limit: int) -> list[str]:
    """Up to ``limit`` distinct sentences of ``source`` (a name in :data:`GENERATED_SOURCES`), in draw order.

    Deterministic: seeded by the source's name only. Fewer than ``limit`` come back when the templates run
    out of new sentences (``limit * 50`` draws); the caller logs the count.
    """
    if source not in _SOURCES:
        raise ValueError(f"unknown generated source {source!r}; known: {sorted(_SOURCES)}")
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    rng = random.Random(f"transcurrent-phrases:{source}")
    templates = _SOURCES[source]
    seen: set[str] = set()
    out: list[str] = []
    for _ in range(limit * _DRAWS_PER_SENTENCE):
        sentence = _fill(rng.choice(templates), rng)
        if sentence not in seen:
            seen.add(sentence)
            out.append(sentence)
            if len(out) == limit:
                break
    return out


def template_words() -> set[str]:
    """Every word the templates and word slots can produce, except the number words made by num2words
    (tests check them all against CMUdict, so no draw can fail on a template's word)."""
    texts = [t for templates in _SOURCES.values() for t in templates]
    texts += [v for slot in _SLOTS.values() if not callable(slot) for v in slot]
    texts += list(_SPELLABLE)
    return {w for text in texts for w in _SLOT.sub(" ", text).split()}
