"""Choice lists of the profile forms: stable codes, labels through the translation catalogue."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

GENDERS = [("male", _l("Male")), ("female", _l("Female"))]

IDENTITY_REGIONS = [
    ("mainland", _l("Mainland of the People's Republic of China")),
    ("hmt", _l("Hong Kong, Macao and Taiwan regions of the People's Republic of China")),
    ("other", _l("Other")),
]

DOCUMENT_TYPES = [
    ("resident_id", _l("Resident identity card")),
    ("passport", _l("Passport")),
    ("hk_macao_permit", _l("Mainland travel permit for Hong Kong and Macao residents")),
    ("taiwan_permit", _l("Mainland travel permit for Taiwan residents")),
    ("hmt_residence_permit", _l("Residence permit for Hong Kong, Macao and Taiwan residents")),
    ("foreign_permanent_residence", _l("Foreign permanent resident ID card")),
    ("other", _l("Other document")),
]

# Which documents each identity region may use (the form checks it; so does the service).
REGION_DOCUMENTS = {
    "mainland": {"resident_id"},
    "hmt": {"hk_macao_permit", "taiwan_permit", "hmt_residence_permit", "passport"},
    "other": {"passport", "foreign_permanent_residence", "other"},
}

UNIT_KINDS = [
    ("enterprise", _l("Enterprise legal person")),
    ("social_org", _l("Social organisation legal person")),
    ("public_institution", _l("Government agency or public institution legal person")),
]

UNIT_REGIONS = [
    ("domestic", _l("Mainland China")),
    ("hmt", _l("Hong Kong, Macao and Taiwan")),
    ("foreign", _l("Outside China")),
]

# The 56 ethnic groups, in the order of GB/T 3304.
ETHNICITIES = [
    "汉族", "蒙古族", "回族", "藏族", "维吾尔族", "苗族", "彝族", "壮族", "布依族", "朝鲜族",
    "满族", "侗族", "瑶族", "白族", "土家族", "哈尼族", "哈萨克族", "傣族", "黎族", "傈僳族",
    "佤族", "畲族", "高山族", "拉祜族", "水族", "东乡族", "纳西族", "景颇族", "柯尔克孜族",
    "土族", "达斡尔族", "仫佬族", "羌族", "布朗族", "撒拉族", "毛南族", "仡佬族", "锡伯族",
    "阿昌族", "普米族", "塔吉克族", "怒族", "乌孜别克族", "俄罗斯族", "鄂温克族", "德昂族",
    "保安族", "裕固族", "京族", "塔塔尔族", "独龙族", "鄂伦春族", "赫哲族", "门巴族", "珞巴族",
    "基诺族", "其他", "外国血统",
]


def label(choices, code) -> str:
    return str(dict(choices).get(code, "")) if code else ""
