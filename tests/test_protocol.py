"""chat.protocol: parsing client frames and the code tables."""

import pytest

from chat.protocol import (
    CHAT_MESSAGE,
    PING,
    CloseCode,
    FrameError,
    ProtocolError,
    Rejection,
    parse_client_frame,
)


def parse(text: str):
    return parse_client_frame(text, max_message_length=10)


def test_parse_chat_message_with_client_id():
    frame = parse('{"type": "chat.message", "message": "oi", "client_id": "c-1"}')
    assert (frame.type, frame.message, frame.client_id) == (CHAT_MESSAGE, "oi", "c-1")


def test_parse_tutorial_frame_is_chat_message():
    assert parse('{"message": "oi"}').type == CHAT_MESSAGE


def test_parse_ping():
    assert parse('{"type": "ping"}').type == PING


def test_parse_message_at_limit_is_accepted_and_one_more_is_not():
    assert parse('{"message": "' + "é" * 10 + '"}').message == "é" * 10
    with pytest.raises(ProtocolError) as error:
        parse('{"message": "' + "é" * 11 + '"}')
    assert error.value.code == FrameError.MESSAGE_TOO_LONG


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", FrameError.INVALID_JSON),
        ("null", FrameError.INVALID_FRAME),
        ('{"type": null}', FrameError.INVALID_FRAME),
        ('{"type": 5, "message": "x"}', FrameError.UNKNOWN_TYPE),
        ('{"type": "typing", "is_typing": 1}', FrameError.INVALID_FRAME),
        ('{"message": ["x"]}', FrameError.INVALID_FRAME),
        ('{"message": "x", "client_id": ""}', FrameError.INVALID_FRAME),
        ('{"message": "\\u00a0 \\t"}', FrameError.EMPTY_MESSAGE),
    ],
)
def test_parse_refuses_with_code(text, code):
    with pytest.raises(ProtocolError) as error:
        parse(text)
    assert error.value.code == code
    assert error.value.detail


@pytest.mark.parametrize(
    ("rejection", "close_code"),
    [
        (Rejection.TOKEN_EXPIRED, 4401),
        (Rejection.NOT_A_MEMBER, 4403),
        (Rejection.REMOVED_FROM_ROOM, 4403),
        (Rejection.ROOM_NOT_FOUND, 4404),
        (Rejection.RATE_LIMITED, 4429),
        (Rejection.FRAME_TOO_BIG, 1009),
        (Rejection.BINARY_NOT_SUPPORTED, 1003),
        (Rejection.SERVICE_UNAVAILABLE, 1013),
        (Rejection.INTERNAL_ERROR, 1011),
    ],
)
def test_rejection_close_codes_follow_the_protocol(rejection, close_code):
    assert rejection.close_code == close_code
    assert rejection.default_detail


def test_every_rejection_has_a_close_code_and_detail():
    for rejection in Rejection:
        assert isinstance(rejection.close_code, CloseCode)
        assert rejection.default_detail
