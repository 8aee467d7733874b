"""Moving conversations in and out: our lossless JSON export, Markdown, and importers for other
chat apps' exports, all turning files into the neutral ``ImportedConversation`` model."""

from ssechat.transfer.model import ImportedConversation, ImportedMessage, ImportFormatError

__all__ = ["ImportFormatError", "ImportedConversation", "ImportedMessage"]
