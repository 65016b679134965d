"""The words of every notification, in Spanish (default), Portuguese and English.

Templates are plain `str.format` strings over the notification's payload,
so a translator edits text, not code. Dates arrive as YYYY-MM-DD.
"""

from __future__ import annotations

from typing import Any

SIGNATURE = {
    "es": "\n\n-- \nCam2Drive, almacenamiento en la nube para sus grabadores",
    "pt": "\n\n-- \nCam2Drive, armazenamento em nuvem para seus gravadores",
    "en": "\n\n-- \nCam2Drive, cloud storage for your recorders",
}

TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "activated": {
        "es": (
            "Su suscripción {plan} está activa",
            "Hola {customer}:\n\nLa suscripción {plan} del grabador {device} está activa. "
            "Su grabador ya puede subir grabaciones a la nube; el periodo pagado termina "
            "el {paid_through}.",
        ),
        "pt": (
            "Sua assinatura {plan} está ativa",
            "Olá {customer},\n\nA assinatura {plan} do gravador {device} está ativa. "
            "O gravador já pode enviar gravações para a nuvem; o período pago termina "
            "em {paid_through}.",
        ),
        "en": (
            "Your {plan} subscription is active",
            "Hello {customer},\n\nThe {plan} subscription of recorder {device} is active. "
            "The recorder can now upload recordings to the cloud; the paid period ends "
            "on {paid_through}.",
        ),
    },
    "payment_failed": {
        "es": (
            "No pudimos cobrar su suscripción {plan}",
            "Hola {customer}:\n\nMercado Pago no pudo cobrar la suscripción {plan} del "
            "grabador {device}. Su grabador sigue subiendo grabaciones mientras tanto.\n\n"
            "Si el pago no se recibe, la nube se bloqueará el {block_on} (no se suben "
            "grabaciones nuevas) y se borrará definitivamente el {delete_on}. Revise su "
            "medio de pago en Mercado Pago.",
        ),
        "pt": (
            "Não conseguimos cobrar sua assinatura {plan}",
            "Olá {customer},\n\nO Mercado Pago não conseguiu cobrar a assinatura {plan} do "
            "gravador {device}. O gravador continua enviando gravações por enquanto.\n\n"
            "Se o pagamento não for recebido, a nuvem será bloqueada em {block_on} (sem "
            "novas gravações) e apagada definitivamente em {delete_on}. Verifique seu "
            "meio de pagamento no Mercado Pago.",
        ),
        "en": (
            "We could not charge your {plan} subscription",
            "Hello {customer},\n\nMercado Pago could not charge the {plan} subscription of "
            "recorder {device}. The recorder keeps uploading for now.\n\n"
            "Unless the payment arrives, the drive will be blocked on {block_on} (no new "
            "recordings) and permanently deleted on {delete_on}. Please check your payment "
            "method in Mercado Pago.",
        ),
    },
    "blocked": {
        "es": (
            "Su nube {plan} está bloqueada por falta de pago",
            "Hola {customer}:\n\nLa nube del grabador {device} está bloqueada por falta de "
            "pago: no se suben grabaciones nuevas. Puede seguir viendo las existentes.\n\n"
            "Si el pago no se recibe, todas las grabaciones se borrarán definitivamente el "
            "{delete_on}.",
        ),
        "pt": (
            "Sua nuvem {plan} está bloqueada por falta de pagamento",
            "Olá {customer},\n\nA nuvem do gravador {device} está bloqueada por falta de "
            "pagamento: não recebe gravações novas. As existentes continuam visíveis.\n\n"
            "Se o pagamento não for recebido, todas as gravações serão apagadas "
            "definitivamente em {delete_on}.",
        ),
        "en": (
            "Your {plan} drive is blocked for non-payment",
            "Hello {customer},\n\nThe drive of recorder {device} is blocked for non-payment: "
            "no new recordings are accepted. Existing recordings stay viewable.\n\n"
            "Unless the payment arrives, every recording will be permanently deleted on "
            "{delete_on}.",
        ),
    },
    "final_warning": {
        "es": (
            "Último aviso: sus grabaciones se borrarán el {delete_on}",
            "Hola {customer}:\n\nÚltimo aviso: las grabaciones del grabador {device} se "
            "borrarán definitivamente el {delete_on} si el pago de {plan} no se recibe "
            "antes. Descargue lo que necesite conservar.",
        ),
        "pt": (
            "Último aviso: suas gravações serão apagadas em {delete_on}",
            "Olá {customer},\n\nÚltimo aviso: as gravações do gravador {device} serão "
            "apagadas definitivamente em {delete_on} se o pagamento de {plan} não for "
            "recebido antes. Baixe o que precisar guardar.",
        ),
        "en": (
            "Final notice: your recordings will be deleted on {delete_on}",
            "Hello {customer},\n\nFinal notice: the recordings of recorder {device} will be "
            "permanently deleted on {delete_on} unless the {plan} payment arrives first. "
            "Download anything you need to keep.",
        ),
    },
    "deleted": {
        "es": (
            "Su nube {plan} fue eliminada",
            "Hola {customer}:\n\nLa nube del grabador {device} fue eliminada por falta de "
            "pago, con todas sus grabaciones. Sus facturas siguen disponibles.",
        ),
        "pt": (
            "Sua nuvem {plan} foi apagada",
            "Olá {customer},\n\nA nuvem do gravador {device} foi apagada por falta de "
            "pagamento, com todas as gravações. Suas notas continuam disponíveis.",
        ),
        "en": (
            "Your {plan} drive was deleted",
            "Hello {customer},\n\nThe drive of recorder {device} was deleted for non-payment, "
            "with all its recordings. Your invoices remain available.",
        ),
    },
    "invoice_ready": {
        "es": (
            "Su factura {serie}-{folio} está lista",
            "Hola {customer}:\n\nAdjuntamos la factura {serie}-{folio} (folio fiscal {uuid}) "
            "por {total} {currency}: {concept}.",
        ),
        "pt": (
            "Sua fatura {serie}-{folio} está pronta",
            "Olá {customer},\n\nSegue anexa a fatura {serie}-{folio} (folio fiscal {uuid}) "
            "de {total} {currency}: {concept}.",
        ),
        "en": (
            "Your invoice {serie}-{folio} is ready",
            "Hello {customer},\n\nAttached is invoice {serie}-{folio} (fiscal folio {uuid}) "
            "for {total} {currency}: {concept}.",
        ),
    },
    "recorder_silent": {
        "es": (
            "El grabador {device} no sube grabaciones",
            "Hola {customer}:\n\nEl grabador {device} no ha subido grabaciones desde "
            "{last_upload} (más de {hours} horas). Revise que esté encendido, con Internet "
            "y con la nube FTP/SFTP configurada.",
        ),
        "pt": (
            "O gravador {device} não envia gravações",
            "Olá {customer},\n\nO gravador {device} não envia gravações desde {last_upload} "
            "(mais de {hours} horas). Verifique se está ligado, com Internet e com a nuvem "
            "FTP/SFTP configurada.",
        ),
        "en": (
            "Recorder {device} is not uploading",
            "Hello {customer},\n\nRecorder {device} has uploaded nothing since {last_upload} "
            "(over {hours} hours). Check that it is powered, online, and that its FTP/SFTP "
            "upload is configured.",
        ),
    },
    "recorder_recovered": {
        "es": (
            "El grabador {device} volvió a subir grabaciones",
            "Hola {customer}:\n\nEl grabador {device} volvió a subir grabaciones el "
            "{recovered_at}.",
        ),
        "pt": (
            "O gravador {device} voltou a enviar gravações",
            "Olá {customer},\n\nO gravador {device} voltou a enviar gravações em {recovered_at}.",
        ),
        "en": (
            "Recorder {device} is uploading again",
            "Hello {customer},\n\nRecorder {device} started uploading again at {recovered_at}.",
        ),
    },
}

TEMPLATES["password_link"] = {
    "es": (
        "Defina su contraseña de Cam2Drive",
        "Hola {customer}:\n\nPara definir la contraseña con la que verá sus grabaciones, "
        "abra este enlace:\n\n{link}\n\nEl enlace funciona una sola vez y vence en {hours} "
        "horas. Si usted no lo pidió, ignore este mensaje.",
    ),
    "pt": (
        "Defina sua senha do Cam2Drive",
        "Olá {customer},\n\nPara definir a senha com que verá suas gravações, abra este "
        "link:\n\n{link}\n\nO link funciona uma única vez e expira em {hours} horas. Se você "
        "não o pediu, ignore esta mensagem.",
    ),
    "en": (
        "Set your Cam2Drive password",
        "Hello {customer},\n\nTo set the password you will watch your recordings with, open "
        "this link:\n\n{link}\n\nThe link works once and expires in {hours} hours. If you did "
        "not ask for it, ignore this message.",
    ),
}
TEMPLATES["staff_password_link"] = {
    "es": (
        "Restablezca su contraseña de Cam2Drive",
        "Hola {customer}:\n\nPara elegir una nueva contraseña con la que administrar a sus "
        "clientes en Cam2Drive, abra este enlace:\n\n{link}\n\nEl enlace funciona una sola "
        "vez y vence en {hours} horas. Si usted no lo pidió, ignore este mensaje: su "
        "contraseña actual sigue vigente.",
    ),
    "pt": (
        "Redefina sua senha do Cam2Drive",
        "Olá {customer},\n\nPara escolher uma nova senha para administrar seus clientes no "
        "Cam2Drive, abra este link:\n\n{link}\n\nO link funciona uma única vez e expira em "
        "{hours} horas. Se você não o pediu, ignore esta mensagem: sua senha atual continua "
        "valendo.",
    ),
    "en": (
        "Reset your Cam2Drive password",
        "Hello {customer},\n\nTo choose a new password for running your customers on "
        "Cam2Drive, open this link:\n\n{link}\n\nThe link works once and expires in {hours} "
        "hours. If you did not ask for it, ignore this message: your current password still "
        "works.",
    ),
}
#: messages that carry a secret: sent to their owner alone, never copied to the distributor
PRIVATE = frozenset({"password_link", "staff_password_link"})


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def render(kind: str, locale: str, payload: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) of a notification in `locale` (falls back to Spanish)."""
    subject, body = TEMPLATES[kind].get(locale) or TEMPLATES[kind]["es"]
    values = _Blank(payload)
    return subject.format_map(values), body.format_map(values) + SIGNATURE.get(
        locale, SIGNATURE["es"]
    )
